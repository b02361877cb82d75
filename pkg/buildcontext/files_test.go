package buildcontext

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/pkg/rootfs"
)

// hostSecret writes a file outside any context, the way a docker config
// sits at /kaniko/.docker/config.json, and returns its path.
func hostSecret(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(p, []byte(`{"auths":{"r.example":{"auth":"c2VjcmV0Omh1bnRlcjI="}}}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func wantNoSecret(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), "c2VjcmV0") {
		t.Errorf("%s: the error shows the host file: %v", what, err)
	}
}

// TestReadDockerfileSymlinkOutOfContext: a Dockerfile that is a symlink out
// of the context, in a directory, tar or stdin context, resolves inside the
// context and is not found; the host file is never read.
func TestReadDockerfileSymlinkOutOfContext(t *testing.T) {
	secret := hostSecret(t)
	archive := tarOf(t, symlink("Dockerfile", secret), symlink("rel", "../../../../../../../.."+secret), dir("sub/"), symlink("sub/Dockerfile", "/Dockerfile"))
	dirCtx := t.TempDir()
	writeTree(t, dirCtx, map[string]string{"Dockerfile": "->" + secret, "rel": "->../../../../../../../.." + secret, "sub/Dockerfile": "->/Dockerfile"})
	for _, tc := range []struct {
		name string
		open func() (*Context, error)
	}{
		{"directory", func() (*Context, error) { return Open(context.Background(), dirCtx) }},
		{"tar", func() (*Context, error) {
			return Open(context.Background(), "tar://"+writeArchive(t, archive), WithWorkDir(t.TempDir()))
		}},
		{"stdin", func() (*Context, error) {
			return Open(context.Background(), "tar://stdin", WithStdin(bytes.NewReader(archive)), WithWorkDir(t.TempDir()))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.open()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for _, name := range []string{"Dockerfile", "rel", "sub/Dockerfile", filepath.Join(c.Dir(), "Dockerfile")} {
				_, _, err := ReadDockerfile(context.Background(), c.Dir(), name, nil, 1<<20)
				if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "resolves inside the build context") {
					t.Errorf("ReadDockerfile(%q) = %v, want not found inside the context", name, err)
				}
				wantNoSecret(t, name, err)
			}
		})
	}
}

func TestReadDockerfileLookup(t *testing.T) {
	ctxDir := t.TempDir()
	cwd := t.TempDir()
	writeTree(t, ctxDir, map[string]string{
		"Dockerfile":        "FROM context\n",
		"build/Dockerfile":  "FROM build\n",
		"alias":             "->/build/Dockerfile",
		"dir/":              "",
		"dotdot/Dockerfile": "FROM dotdot\n",
	})
	writeTree(t, cwd, map[string]string{"Only.cwd": "FROM cwd\n", "Dockerfile": "FROM cwd-shadowed\n"})
	outside := filepath.Join(t.TempDir(), "Dockerfile.abs")
	writeTree(t, filepath.Dir(outside), map[string]string{"Dockerfile.abs": "FROM outside\n", "link": "->" + outside})
	t.Chdir(cwd)
	// A symlink above the context: the context reached under another name.
	above := filepath.Join(t.TempDir(), "ctx-link")
	if err := os.Symlink(ctxDir, above); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, want, path string
	}{
		{"Dockerfile", "FROM context\n", filepath.Join(ctxDir, "Dockerfile")},
		{"./build/../build/Dockerfile", "FROM build\n", filepath.Join(ctxDir, "build/Dockerfile")},
		{"alias", "FROM build\n", filepath.Join(ctxDir, "alias")},
		{"Only.cwd", "FROM cwd\n", filepath.Join(cwd, "Only.cwd")},
		{outside, "FROM outside\n", outside},
		// The user's own path outside the context: its symlinks are followed.
		{filepath.Join(filepath.Dir(outside), "link"), "FROM outside\n", filepath.Join(filepath.Dir(outside), "link")},
		{filepath.Join(ctxDir, "alias"), "FROM build\n", filepath.Join(ctxDir, "alias")},
		{filepath.Join(above, "alias"), "FROM build\n", filepath.Join(ctxDir, "alias")},
	} {
		data, p, err := ReadDockerfile(context.Background(), ctxDir, tc.name, nil, 1<<20)
		if err != nil || string(data) != tc.want || p != tc.path {
			t.Errorf("ReadDockerfile(%q) = %q, %q, %v; want %q from %q", tc.name, data, p, err, tc.want, tc.path)
		}
	}
	for name, want := range map[string]string{
		"missing":       `Dockerfile "missing" not found in the build context "` + ctxDir + `" nor in the current directory`,
		"dir":           "is a directory",
		"../Dockerfile": "not found",
	} {
		if _, _, err := ReadDockerfile(context.Background(), ctxDir, name, nil, 1<<20); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ReadDockerfile(%q) = %v, want %q", name, err, want)
		}
	}
}

// TestReadDockerfileOnlyRegularFiles: a named pipe would block, /dev/zero
// would be read until memory runs out; both fail at once, and so does a
// file over the limit.
func TestReadDockerfileOnlyRegularFiles(t *testing.T) {
	ctxDir := t.TempDir()
	writeTree(t, ctxDir, map[string]string{"Dockerfile.big": strings.Repeat("#\n", 1000), "zero": "->/dev/zero"})
	if err := unix.Mkfifo(filepath.Join(ctxDir, "Dockerfile"), 0o644); err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	if err := unix.Mkfifo(filepath.Join(outside, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		is   error
		want string
	}{
		{"Dockerfile", rootfs.ErrSpecialFile, "named pipe"},
		{filepath.Join(outside, "fifo"), rootfs.ErrSpecialFile, "named pipe"},
		{"/dev/zero", rootfs.ErrSpecialFile, "character device"},
		{"zero", fs.ErrNotExist, "resolves inside the build context"},
		{"Dockerfile.big", rootfs.ErrTooLarge, "more than the limit of 1 KiB"},
	} {
		_, _, err := ReadDockerfile(context.Background(), ctxDir, tc.name, nil, 1<<10)
		if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `Dockerfile "`+tc.name+`"`) {
			t.Errorf("ReadDockerfile(%q) = %v, want %v naming it and %q", tc.name, err, tc.is, tc.want)
		}
	}
}

func TestLoadIgnoreConfined(t *testing.T) {
	secretDir := t.TempDir()
	writeTree(t, secretDir, map[string]string{"ignore": "*\n"})
	// <Dockerfile>.dockerignore linking out of the context resolves inside
	// it, where it dangles: the context's .dockerignore applies instead.
	c := openDirNoIgnore(t, map[string]string{
		".dockerignore":               "a\n",
		"Dockerfile":                  "FROM scratch\n",
		"Dockerfile.dockerignore":     "->" + filepath.Join(secretDir, "ignore"),
		"sub/Dockerfile":              "FROM scratch\n",
		"sub/Dockerfile.dockerignore": "->../../../../../../.." + filepath.Join(secretDir, "ignore"),
		"a":                           "a",
		"b":                           "b",
	})
	for _, df := range []string{"Dockerfile", "sub/Dockerfile"} {
		if err := c.LoadIgnore(filepath.Join(c.Dir(), df)); err != nil {
			t.Fatal(err)
		}
		wantHidden(t, c.FS(), "/a")
		if _, err := c.FS().Lstat("/b"); err != nil {
			t.Errorf("%s: the host's ignore file was read: %v", df, err)
		}
	}
}

func TestLoadIgnoreOnlyRegularFiles(t *testing.T) {
	c := openDirNoIgnore(t, map[string]string{"Dockerfile": "FROM scratch\n"})
	if err := unix.Mkfifo(filepath.Join(c.Dir(), ".dockerignore"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := c.LoadIgnore("")
	if !errors.Is(err, rootfs.ErrSpecialFile) || !strings.Contains(err.Error(), `ignore file ".dockerignore"`) {
		t.Errorf("a named pipe .dockerignore: %v", err)
	}
	outside := t.TempDir()
	if err := os.Symlink("/dev/zero", filepath.Join(outside, "Dockerfile.dockerignore")); err != nil {
		t.Fatal(err)
	}
	err = c.LoadIgnore(filepath.Join(outside, "Dockerfile"))
	if !errors.Is(err, rootfs.ErrSpecialFile) || !strings.Contains(err.Error(), "character device") {
		t.Errorf("a Dockerfile.dockerignore linking to /dev/zero: %v", err)
	}
	if err := os.WriteFile(filepath.Join(outside, "Big.dockerignore"), bytes.Repeat([]byte("x\n"), MaxIgnoreFileSize), 0o644); err != nil {
		t.Fatal(err)
	}
	err = c.LoadIgnore(filepath.Join(outside, "Big"))
	if !errors.Is(err, rootfs.ErrTooLarge) || !strings.Contains(err.Error(), "more than the limit of 4 MiB") {
		t.Errorf("a huge ignore file: %v", err)
	}
}

// TestDockerignoreBadPatterns: the error names the file, the line and the
// pattern, when the file is loaded, not when a COPY first matches a path.
func TestDockerignoreBadPatterns(t *testing.T) {
	for _, tc := range []struct {
		ignore, want string
	}{
		{"# c\n\nok\n[\n", `ignore file ".dockerignore": line 4: invalid pattern "[": syntax error in pattern`},
		{"a\n\r\n  b/[z-a]\n", `ignore file ".dockerignore": line 3: invalid pattern "b/[z-a]": syntax error in pattern`},
		{"\xef\xbb\xbf!\n", `line 1: invalid pattern "!": illegal exclusion pattern`},
		{"a\n!c/[\n", `line 2: invalid pattern "!c/[": syntax error in pattern`},
		{"x\n" + strings.Repeat("y", 70000) + "\n", "line 2 is longer than 65535 bytes"},
	} {
		c := openDirNoIgnore(t, map[string]string{".dockerignore": tc.ignore, "b/z": "z"})
		err := c.LoadIgnore("")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: LoadIgnore = %v, want %q", tc.ignore, err, tc.want)
		}
	}
}

// openDirNoIgnore opens a directory context holding files without loading
// its ignore file.
func openDirNoIgnore(t *testing.T, files map[string]string) *Context {
	t.Helper()
	d := t.TempDir()
	writeTree(t, d, files)
	c, err := Open(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestReadDockerfileStdin(t *testing.T) {
	data, p, err := ReadDockerfile(context.Background(), t.TempDir(), "-", strings.NewReader("FROM scratch\n"), 1<<10)
	if err != nil || string(data) != "FROM scratch\n" || p != "" {
		t.Errorf("stdin: %q, %q, %v", data, p, err)
	}
	_, _, err = ReadDockerfile(context.Background(), t.TempDir(), "-", bytes.NewReader(make([]byte, 2000)), 1<<10)
	if !errors.Is(err, rootfs.ErrTooLarge) || !strings.Contains(err.Error(), "standard input") {
		t.Errorf("too much on stdin: %v", err)
	}
	stdin := &blockingReader{entered: make(chan struct{}), release: make(chan struct{})}
	defer close(stdin.release)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-stdin.entered
		cancel()
	}()
	if _, _, err := ReadDockerfile(ctx, t.TempDir(), "-", stdin, 1<<10); !errors.Is(err, context.Canceled) {
		t.Errorf("a stdin that never ends, cancelled: %v", err)
	}
}
