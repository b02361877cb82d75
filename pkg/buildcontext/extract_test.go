package buildcontext

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

var mtime = time.Date(2023, 11, 14, 22, 13, 20, 0, time.UTC)

// tarOf builds an archive from headers; a regular file's content is its
// Linkname field when Typeflag is tar.TypeReg (Size is filled in).
func tarOf(t *testing.T, hdrs ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		h := *h
		var body []byte
		if h.Typeflag == tar.TypeReg {
			body, h.Linkname = []byte(h.Linkname), ""
			h.Size = int64(len(body))
		}
		if h.ModTime.IsZero() {
			h.ModTime = mtime
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func file(name, content string) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeReg, Linkname: content}
}

func dir(name string) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755}
}

func symlink(name, target string) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777}
}

func hardlink(name, target string) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: target}
}

func writeArchive(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "context.tar")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func compress(t *testing.T, data []byte, kind string) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w interface {
		Write([]byte) (int, error)
		Close() error
	}
	var err error
	switch kind {
	case "gzip":
		w = gzip.NewWriter(&buf)
	case "xz":
		w, err = xz.NewWriter(&buf)
	case "zstd":
		w, err = zstd.NewWriter(&buf)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// bzip2Tar is a tar holding hello.txt ("hi\n"), compressed with bzip2 (Go
// has no bzip2 writer). Made with Python: tarfile (PAX, mtime 1700000000,
// mode 0644) then bz2.compress(data, 9).
const bzip2Tar = "QlpoOTFBWSZTWdeg6wAAAHH7gMkQAADAAX+AAIBiZJ5ACAggAFQ0ptJpoyGjamRptBJTRMgaABoH3dgyEEYIQidHSI4OqQIcuWKTgJ8mA2eAhsny4NQTRr35OMx36is+sLXVbrCJEQGBdyRThQkNeg6wAA=="

func TestOpenTarCompressions(t *testing.T) {
	plain := tarOf(t, file("hello.txt", "hi\n"))
	bz, err := base64.StdEncoding.DecodeString(bzip2Tar)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"plain": plain,
		"gzip":  compress(t, plain, "gzip"),
		"xz":    compress(t, plain, "xz"),
		"zstd":  compress(t, plain, "zstd"),
		"bzip2": bz,
	} {
		t.Run(name, func(t *testing.T) {
			c, err := Open(context.Background(), "tar://"+writeArchive(t, data), WithWorkDir(t.TempDir()))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := readFile(t, c.FS(), "/hello.txt"); got != "hi\n" {
				t.Errorf("hello.txt = %q", got)
			}
		})
	}
}

func TestOpenTarPlainNameLikeMagic(t *testing.T) {
	// A plain archive whose first name starts like bzip2's magic.
	c, err := Open(context.Background(), "tar://"+writeArchive(t, tarOf(t, file("BZh9.txt", "x"))), WithWorkDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wantListing(t, c.FS(), "/BZh9.txt")
}

func TestOpenTarStdin(t *testing.T) {
	work := t.TempDir()
	data := compress(t, tarOf(t, file("Dockerfile", "FROM scratch\n"), file(".dockerignore", "secret\n"), file("secret", "s")), "gzip")
	c, err := Open(context.Background(), "tar://stdin", WithStdin(bytes.NewReader(data)), WithWorkDir(work))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.Dir(), work+string(filepath.Separator)) {
		t.Errorf("extracted into %q, not into the work directory %q", c.Dir(), work)
	}
	if err := c.LoadIgnore(""); err != nil {
		t.Fatal(err)
	}
	wantListing(t, c.FS(), "/.dockerignore", "/Dockerfile")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(work); len(ents) != 0 {
		t.Errorf("Close left %v in the work directory", ents)
	}
}

func TestOpenTarSubPath(t *testing.T) {
	data := tarOf(t, dir("./"), dir("./app/"), file("./app/Dockerfile", "FROM scratch\n"), file("./other", "o"))
	c, err := Open(context.Background(), "tar://"+writeArchive(t, data), WithSubPath("app"), WithWorkDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wantListing(t, c.FS(), "/Dockerfile")
}

func TestExtractKeepsMetadata(t *testing.T) {
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	data := tarOf(t,
		&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o750, ModTime: old},
		&tar.Header{Name: "bin/tool", Typeflag: tar.TypeReg, Linkname: "#!/bin/sh\n", Mode: 0o4755, ModTime: old},
		symlink("tool", "/bin/tool"),
		hardlink("bin/tool2", "bin/tool"),
		file("deep/implied/parents", "p"),
		// Later entries replace earlier ones.
		file("replaced", "first"),
		symlink("replaced", "tool"),
		file("file-then-dir", "f"),
		dir("file-then-dir/"),
		dir("dir-then-file/"),
		file("dir-then-file", "f"),
		// A link to a directory inside the archive can be written through.
		dir("real/"),
		symlink("alias", "/real"),
		file("alias/through", "t"),
	)
	c, err := Open(context.Background(), "tar://"+writeArchive(t, data), WithWorkDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st, err := os.Lstat(filepath.Join(c.Dir(), "bin/tool"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o755 || st.Mode()&os.ModeSetuid == 0 || !st.ModTime().Equal(old) {
		t.Errorf("bin/tool: mode %v, time %v", st.Mode(), st.ModTime())
	}
	st2, err := os.Lstat(filepath.Join(c.Dir(), "bin/tool2"))
	if err != nil || st2.Sys().(*syscall.Stat_t).Ino != st.Sys().(*syscall.Stat_t).Ino {
		t.Errorf("bin/tool2 is not a hard link of bin/tool: %v", err)
	}
	if st, err := os.Lstat(filepath.Join(c.Dir(), "bin")); err != nil || st.Mode().Perm() != 0o750 || !st.ModTime().Equal(old) {
		t.Errorf("bin: %v, %v", st, err)
	}
	for name, target := range map[string]string{"tool": "/bin/tool", "replaced": "tool"} {
		if got, err := os.Readlink(filepath.Join(c.Dir(), name)); err != nil || got != target {
			t.Errorf("%s -> %q, %v; want -> %q", name, got, err, target)
		}
	}
	if got := readFile(t, c.FS(), "/replaced"); got != "#!/bin/sh\n" {
		t.Errorf("replaced (through two links) = %q", got)
	}
	if got := readFile(t, c.FS(), "/deep/implied/parents"); got != "p" {
		t.Errorf("deep/implied/parents = %q", got)
	}
	if st, err := os.Lstat(filepath.Join(c.Dir(), "file-then-dir")); err != nil || !st.IsDir() {
		t.Errorf("file-then-dir: %v, %v", st, err)
	}
	if got := readFile(t, c.FS(), "/dir-then-file"); got != "f" {
		t.Errorf("dir-then-file = %q", got)
	}
	if got := readFile(t, c.FS(), "/real/through"); got != "t" {
		t.Errorf("real/through = %q", got)
	}
	if st, err := os.Lstat(filepath.Join(c.Dir(), "tool")); err != nil || !st.ModTime().Equal(mtime) {
		t.Errorf("symlink time: %v, %v", st, err)
	}
}

func TestExtractHostileEntries(t *testing.T) {
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("host"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(outside, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		hdrs []*tar.Header
		want string // error fragment; "" when the archive extracts harmlessly
	}{
		{"dot-dot", []*tar.Header{file("../evil", "x")}, `archive entry "../evil": the path leads outside the archive's root`},
		{"nested dot-dot", []*tar.Header{file("a/../../evil", "x")}, `archive entry "a/../../evil": the path leads outside`},
		{"hard link out", []*tar.Header{hardlink("l", "../../"+victim)}, `hard link target "../../` + victim + `": the path leads outside`},
		{"hard link to host path", []*tar.Header{hardlink("l", victim)}, "no such file or directory"},
		{"device", []*tar.Header{{Name: "null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}}, `archive entry "null": device nodes`},
		// Links resolve inside the archive's root, where this one dangles.
		{"absolute link then write", []*tar.Header{symlink("escape", outside), file("escape/victim", "pwned")}, `archive entry "escape/victim": `},
		{"relative link then write", []*tar.Header{symlink("up", "../../../../../.."), file("up"+victim, "pwned")}, ""},
		{"link as directory", []*tar.Header{symlink("d", outside), dir("d/")}, ""},
		{"absolute name", []*tar.Header{file(victim, "pwned")}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			work := t.TempDir()
			c, err := Open(context.Background(), "tar://"+writeArchive(t, tarOf(t, tc.hdrs...)), WithWorkDir(work))
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("Open = %v, want an error containing %q", err, tc.want)
				}
				if ents, _ := os.ReadDir(work); len(ents) != 0 {
					t.Errorf("a failed extraction left %v in the work directory", ents)
				}
			} else if err != nil {
				t.Errorf("Open: %v", err)
			} else {
				c.Close()
			}
			if b, _ := os.ReadFile(victim); string(b) != "host" {
				t.Fatalf("the archive wrote outside its directory: victim = %q", b)
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 1 {
				t.Fatalf("the archive created files outside its directory: %v", ents)
			}
			if st, _ := os.Stat(outside); st.Mode().Perm() != 0o700 {
				t.Fatalf("the archive changed the mode of a directory outside: %v", st.Mode())
			}
		})
	}
}

func TestExtractCancelled(t *testing.T) {
	work := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Open(ctx, "tar://"+writeArchive(t, tarOf(t, file("a", "a"))), WithWorkDir(work))
	if err == nil || !strings.Contains(err.Error(), context.Canceled.Error()) {
		t.Errorf("Open with a cancelled context = %v", err)
	}
	if ents, _ := os.ReadDir(work); len(ents) != 0 {
		t.Errorf("left %v in the work directory", ents)
	}
}

func TestOpenTarNotAnArchive(t *testing.T) {
	_, err := Open(context.Background(), "tar://"+writeArchive(t, []byte("FROM scratch\nRUN true\nthis is not a tar archive at all, just text that is long enough to fill a header..........................................................................................................................................................................................................................................................................................................................................................................................................................................................................................")), WithWorkDir(t.TempDir()))
	if err == nil || !strings.Contains(err.Error(), "reading the archive") {
		t.Errorf("Open of a text file = %v", err)
	}
}

// A context archive is not an image layer: ".wh." names are files, and
// owners are not kept.
func TestExtractIsNotALayer(t *testing.T) {
	data := tarOf(t,
		file("a", "a"),
		file(".wh.a", "not a whiteout"),
		dir("d/"),
		file("d/.wh..wh..opq", "opq"),
		&tar.Header{Name: "owned", Typeflag: tar.TypeReg, Linkname: "o", Uid: 4242, Gid: 4343},
	)
	c, err := Open(context.Background(), "tar://"+writeArchive(t, data), WithWorkDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wantListing(t, c.FS(), "/.wh.a", "/a", "/d/", "/d/.wh..wh..opq", "/owned")
	if e, err := c.FS().Lstat("/owned"); err != nil || e.UID != os.Geteuid() {
		t.Errorf("owned: %+v, %v; want the extracting user's", e, err)
	}
}

// blockingReader blocks its first Read until released, like a terminal
// nobody types into.
type blockingReader struct {
	entered chan struct{}
	release chan struct{}
}

func (b *blockingReader) Read(p []byte) (int, error) {
	close(b.entered)
	<-b.release
	return 0, io.EOF
}

func TestExtractStdinCancelled(t *testing.T) {
	work := t.TempDir()
	stdin := &blockingReader{entered: make(chan struct{}), release: make(chan struct{})}
	defer close(stdin.release)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-stdin.entered
		cancel()
	}()
	_, err := Open(ctx, "tar://stdin", WithStdin(stdin), WithWorkDir(work))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Open of a blocked stdin once cancelled = %v", err)
	}
	if ents, _ := os.ReadDir(work); len(ents) != 0 {
		t.Errorf("left %v in the work directory", ents)
	}
}

// The archive's root entry does not change the directory it is extracted
// into (as with Docker): a mode 0 there would lock kiln out of its context.
func TestExtractKeepsTheContextDirectory(t *testing.T) {
	data := tarOf(t, &tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o500, ModTime: time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)}, file("f", "f"))
	c, err := Open(context.Background(), "tar://"+writeArchive(t, data), WithWorkDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st, err := os.Stat(c.Dir())
	if err != nil || st.Mode().Perm() != 0o700 || st.ModTime().Year() == 2001 {
		t.Errorf("the context directory: %v, %v", st.Mode(), err)
	}
	wantListing(t, c.FS(), "/f")
}
