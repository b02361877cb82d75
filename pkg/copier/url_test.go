package copier

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

const payload = "downloaded payload\n"

var lastModified = time.Date(2020, 5, 6, 7, 8, 9, 0, time.UTC)

// server serves the files ADD tests download; httptest listens on
// 127.0.0.1.
func server(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/files/app.bin", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Last-Modified", lastModified.Format(http.TimeFormat))
		w.Write([]byte(payload))
	})
	mux.HandleFunc("/nodate/app.tar", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(payload))
	})
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(payload))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestAddURL(t *testing.T) {
	srv := server(t)
	url := srv.URL + "/files/app.bin"
	cases := []struct {
		name  string
		dest  string
		chmod string
		chown *Owner
		want  []string
	}{
		{"into a directory", "/dl/", "", nil, []string{"d dl 755 0:0", "f dl/app.bin 600 0:0 " + payload}},
		{"to a file name", "/named", "", nil, []string{"f named 600 0:0 " + payload}},
		{"into an existing directory", "/existing", "", nil, []string{"d existing 700 5:5", "f existing/app.bin 600 0:0 " + payload}},
		{"chmod and chown", "/x/", "644", &Owner{5, 6}, []string{"d x 755 5:6", "f x/app.bin 644 5:6 " + payload}},
	}
	for _, c := range cases {
		_, ents, err := copyTo(t, &Request{Sources: []string{url}, Dest: c.dest, Dst: stage(), Add: true, Chmod: c.chmod, Chown: c.chown})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		equal(t, c.name, describe(ents), c.want)
		if last := ents[len(ents)-1].hdr; !last.ModTime.Equal(lastModified) {
			t.Errorf("%s: mtime %v, want Last-Modified %v", c.name, last.ModTime, lastModified)
		}
	}

	// Without Last-Modified the file gets the time of the build; a
	// downloaded archive is never extracted.
	start := time.Now().Add(-time.Second)
	_, ents, err := copyTo(t, &Request{Sources: []string{srv.URL + "/nodate/app.tar"}, Dest: "/", Add: true})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "no date", describe(ents), []string{"f app.tar 600 0:0 " + payload})
	if ents[0].hdr.ModTime.Before(start) {
		t.Errorf("mtime %v, want the time of the build", ents[0].hdr.ModTime)
	}

	// A URL without a path can only be saved under a name given as dest.
	got := mustCopy(t, &Request{Sources: []string{srv.URL}, Dest: "/index.html", Add: true})
	equal(t, "no path", got, []string{"f index.html 600 0:0 " + payload})
	_, _, err = copyTo(t, &Request{Sources: []string{srv.URL}, Dest: "/www/", Add: true})
	wantErr(t, "no path into a dir", err, "cannot name the file downloaded from "+`"`+srv.URL+`"`)
}

func TestAddURLChecksum(t *testing.T) {
	srv := server(t)
	url := srv.URL + "/files/app.bin"
	s256 := sha256.Sum256([]byte(payload))
	s512 := sha512.Sum512([]byte(payload))
	for _, sum := range []string{"sha256:" + hex.EncodeToString(s256[:]), "sha512:" + hex.EncodeToString(s512[:])} {
		got := mustCopy(t, &Request{Sources: []string{url}, Dest: "/f", Add: true, Checksum: sum})
		equal(t, sum, got, []string{"f f 600 0:0 " + payload})
	}

	bad := "sha256:" + hex.EncodeToString(make([]byte, 32))
	_, _, err := copyTo(t, &Request{Sources: []string{url}, Dest: "/f", Add: true, Checksum: bad})
	wantErr(t, "mismatch", err, `"`+url+`"`, "checksum mismatch", "got sha256:"+hex.EncodeToString(s256[:]), "want "+bad)

	for _, c := range []struct {
		req  *Request
		want string
	}{
		{&Request{Sources: []string{url}, Dest: "/f", Add: true, Checksum: "md5:abcd"}, `invalid --checksum "md5:abcd"`},
		{&Request{Sources: []string{url}, Dest: "/f", Add: true, Checksum: "sha256:abcd"}, "not a sha256 hex digest"},
		{&Request{Sources: []string{url, url}, Dest: "/f/", Add: true, Checksum: bad}, "only a single URL source"},
		{&Request{Sources: []string{"local"}, Dest: "/f", Add: true, Checksum: bad}, "only a single URL source"},
	} {
		_, _, err := copyTo(t, c.req)
		wantErr(t, c.want, err, c.want)
	}
}

func TestAddURLErrors(t *testing.T) {
	srv := server(t)
	missing := srv.URL + "/missing"
	_, _, err := copyTo(t, &Request{Sources: []string{missing}, Dest: "/f", Add: true})
	wantErr(t, "404", err, `fetching "`+missing+`"`, "404 Not Found")

	srv.Close()
	_, _, err = copyTo(t, &Request{Sources: []string{srv.URL + "/files/app.bin"}, Dest: "/f", Add: true})
	wantErr(t, "unreachable", err, `fetching "`+srv.URL+`/files/app.bin"`)

	_, _, err = copyTo(t, &Request{Sources: []string{"https://example.com/x"}, Dest: "/f"})
	wantErr(t, "COPY", err, `"https://example.com/x": COPY does not download URLs, use ADD`)
}
