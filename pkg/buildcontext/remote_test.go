package buildcontext

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// contextArchive is a context with a sub-directory and an ignore file.
func contextArchive(t *testing.T) []byte {
	return tarOf(t,
		file("Dockerfile", "FROM scratch\n"),
		dir("app/"),
		file("app/Dockerfile", "FROM scratch\n"),
		file("app/.dockerignore", "ignored\n"),
		file("app/ignored", "i"),
	)
}

func TestOpenURL(t *testing.T) {
	archive := contextArchive(t)
	files := map[string][]byte{
		"/ctx.tar":     archive,
		"/ctx.tar.gz":  compress(t, archive, "gzip"),
		"/ctx.tar.zst": compress(t, archive, "zstd"),
		// The name does not matter, the content does.
		"/download?id=7": compress(t, archive, "xz"),
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, ok := files[r.URL.RequestURI()]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(data)
	}))
	defer srv.Close()
	for name := range files {
		t.Run(name, func(t *testing.T) {
			work := t.TempDir()
			c, err := Open(context.Background(), srv.URL+name, WithWorkDir(work), WithSubPath("app"), WithLogger(discardLogger()))
			if err != nil {
				t.Fatal(err)
			}
			if err := c.LoadIgnore(""); err != nil {
				t.Fatal(err)
			}
			wantListing(t, c.FS(), "/.dockerignore", "/Dockerfile")
			// The download is gone once extracted; Close removes the rest.
			if entries, _ := os.ReadDir(work); len(entries) != 1 || !strings.HasPrefix(entries[0].Name(), "kiln-context-") || !entries[0].IsDir() {
				t.Errorf("the work directory holds %v, want the context directory alone", entries)
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			if entries, _ := os.ReadDir(work); len(entries) != 0 {
				t.Errorf("Close left %v", entries)
			}
		})
	}
}

func TestOpenURLCredentials(t *testing.T) {
	archive := compress(t, contextArchive(t), "gzip")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, _ := r.BasicAuth(); u != "builder" || p != "pass-secret" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		w.Write(archive)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	c, err := Open(context.Background(), "http://builder:pass-secret@"+host+"/ctx.tar.gz", WithWorkDir(t.TempDir()), WithLogger(discardLogger()))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	_, err = Open(context.Background(), "http://builder:wrong-secret@"+host+"/ctx.tar.gz", WithWorkDir(t.TempDir()), WithLogger(discardLogger()))
	if want := `build context "http://` + host + `/ctx.tar.gz": the server answered "401 Unauthorized"`; err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
}

func TestOpenURLErrors(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/boom", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) })
	mux.HandleFunc("/page", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte("<html></html>"))
	})
	mux.HandleFunc("/truncated", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		w.Write(compress(t, contextArchive(t), "gzip")[:50])
	})
	mux.HandleFunc("/text", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("not an archive, just text that goes on for a while"))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, tc := range []struct{ path, want string }{
		{"/missing.tar.gz", `the server answered "404 Not Found"`},
		{"/boom", `the server answered "500 Internal Server Error"`},
		{"/page", `the server sent an HTML page, not an archive (a git repository's URL ends in ".git")`},
		{"/truncated", "downloading: unexpected EOF"},
		{"/text", "reading the archive"},
		{"/ctx.tar.gz#main", `a fragment (#main) selects the ref of a git repository`},
	} {
		work := t.TempDir()
		_, err := Open(context.Background(), srv.URL+tc.path, WithWorkDir(work), WithLogger(discardLogger()))
		if want := `build context "` + srv.URL + tc.path + `": `; err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q...%q", tc.path, err, want, tc.want)
		}
		if entries, _ := os.ReadDir(work); len(entries) != 0 {
			t.Errorf("%s: the failed download left %v", tc.path, entries)
		}
	}
}

// TestOpenURLStreamsToDisk holds the response half sent until the first
// half is in the download file: the archive goes to disk as it arrives.
func TestOpenURLStreamsToDisk(t *testing.T) {
	archive := compress(t, tarOf(t, file("big", strings.Repeat("0123456789abcdef", 1<<16))), "zstd")
	half := len(archive) / 2
	work := t.TempDir()
	seen := make(chan bool, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(archive)))
		w.Write(archive[:half])
		w.(http.Flusher).Flush()
		seen <- waitForDownload(work, int64(half))
		w.Write(archive[half:])
	}))
	defer srv.Close()
	c, err := Open(context.Background(), srv.URL+"/ctx", WithWorkDir(work), WithLogger(discardLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !<-seen {
		t.Error("the first half of the archive never reached the download file")
	}
	if got := readFile(t, c.FS(), "/big"); len(got) != 1<<20 {
		t.Errorf("big has %d bytes, want %d", len(got), 1<<20)
	}
}

// waitForDownload waits, a minute at most, for a download file of at
// least size bytes in dir.
func waitForDownload(dir string, size int64) bool {
	for range 600 {
		matches, _ := filepath.Glob(filepath.Join(dir, "kiln-context-*.download"))
		for _, m := range matches {
			if st, err := os.Stat(m); err == nil && st.Size() >= size {
				return true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}
