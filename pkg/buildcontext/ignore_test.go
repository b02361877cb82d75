package buildcontext

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The trees and ignore files below are those of the conformance cases of
// the same names; the expected views are what the reference builder (and
// Docker's classic builder) copy for them.

func TestDockerignoreBasic(t *testing.T) {
	c := openDir(t, map[string]string{
		".dockerignore":   "# comment\n*\ntest*\n!test2*\nsubdir\n!*/sub1*",
		"Dockerfile":      "FROM busybox\n",
		"test1.txt":       "test1\n",
		"test2.txt":       "test2\n",
		"subdir/sub1.txt": "sub1\n",
		"subdir/sub2.txt": "sub2\n",
	})
	// "!*/sub1*" does not start with "subdir/": the excluded directory is
	// not searched, so subdir/sub1.txt stays excluded.
	wantListing(t, c.FS(), "/test2.txt")
	wantHidden(t, c.FS(), "/Dockerfile", "/.dockerignore", "/test1.txt", "/subdir", "/subdir/sub1.txt", "/subdir/sub2.txt")
}

const exceptionsIgnore = `# comment
*
!test*
!src
**/*.in
src/etc
*.md
!README*.md
README-secret.md
test1.txt
`

var exceptionsTree = map[string]string{
	".dockerignore":                  exceptionsIgnore,
	"BUILD.md":                       "build",
	"COPYRIGHT":                      "c",
	"Dockerfile":                     "FROM busybox\n",
	"LICENSE":                        "l",
	"README-secret.md":               "secret",
	"README.md":                      "readme",
	"manifest":                       "m",
	"src/Makefile":                   "all:",
	"src/cmd/Makefile":               "all:",
	"src/cmd/main.in":                "in",
	"src/etc/foo.conf":               "conf",
	"src/etc/foo.conf.d/dropin.conf": "dropin",
	"src/lib/Makefile":               "all:",
	"src/lib/framework.in":           "in",
	"test1.txt":                      "1",
	"test2.txt":                      "2",
	"test3.txt":                      "3",
}

func TestDockerignoreExceptions(t *testing.T) {
	c := openDir(t, exceptionsTree)
	wantListing(t, c.FS(),
		"/README.md",
		"/src/", "/src/Makefile", "/src/cmd/", "/src/cmd/Makefile", "/src/lib/", "/src/lib/Makefile",
		"/test2.txt", "/test3.txt")
	wantHidden(t, c.FS(), "/src/etc", "/src/etc/foo.conf", "/src/cmd/main.in", "/README-secret.md", "/BUILD.md")
}

// dockerignore-copy-ignored-fails: COPY of an excluded file finds nothing.
func TestDockerignoreCopyIgnoredFails(t *testing.T) {
	c := openDir(t, map[string]string{".dockerignore": exceptionsIgnore, "test1.txt": "1", "test2.txt": "2"})
	wantHidden(t, c.FS(), "/test1.txt")
	wantListing(t, c.FS(), "/test2.txt")
	ex := c.FS().(interface{ Excluded(string) bool })
	if !ex.Excluded("/test1.txt") || ex.Excluded("/test2.txt") || ex.Excluded("/missing") {
		t.Error("Excluded must be true only for existing files the ignore file hides")
	}
}

func TestDockerignoreNestedException(t *testing.T) {
	c := openDir(t, map[string]string{
		".dockerignore":             "stuff/huge/*\n!stuff/huge/usr/bin/*\n",
		"Dockerfile":                "FROM busybox\n",
		"stuff/huge/usr/bin/file1":  "1",
		"stuff/huge/usr/bin/file2":  "2",
		"stuff/huge/usr/file3":      "3",
		"stuff/huge/lib/libhuge.so": "so",
	})
	wantListing(t, c.FS(), "/.dockerignore", "/Dockerfile",
		"/stuff/", "/stuff/huge/", "/stuff/huge/usr/", "/stuff/huge/usr/bin/",
		"/stuff/huge/usr/bin/file1", "/stuff/huge/usr/bin/file2")
	wantHidden(t, c.FS(), "/stuff/huge/usr/file3", "/stuff/huge/lib", "/stuff/huge/lib/libhuge.so")
	// The excluded directories kept for re-included files are new ones.
	e, err := c.FS().Lstat("/stuff/huge/usr")
	if err != nil || e.Mode != fs.ModeDir|0o755 || e.UID != 0 {
		t.Errorf("/stuff/huge/usr shows as %+v, %v; want a 0755 directory owned by root", e, err)
	}
}

func TestDockerignoreExceptionForms(t *testing.T) {
	tree := map[string]string{
		"keep/this/x": "x",
		"keep/other":  "o",
		"drop/this/y": "y",
		"drop/z":      "z",
	}
	for _, tc := range []struct {
		name, ignore string
		want         []string
	}{
		// An excluded directory is searched only when an exception starts
		// with its path: wildcard exceptions re-include nothing below it.
		{"plain", "*\n!keep/this\n", []string{"/keep/", "/keep/this/", "/keep/this/x"}},
		{"plain with glob", "*\n!keep/this/*\n", []string{"/keep/", "/keep/this/", "/keep/this/x"}},
		{"wildcard", "*\n!*/this\n", nil},
		{"double star", "*\n!**/y\n", nil},
		// The prefix is compared literally, directory by directory.
		{"wildcard below a plain prefix", "*\n!drop/*/y\n", nil},
		{"literal path below", "*\n!drop/this/y\n", []string{"/drop/", "/drop/this/", "/drop/this/y"}},
		{"re-excluded below", "*\n!keep\nkeep/this\n", []string{"/keep/", "/keep/other"}},
		{"no exceptions", "drop\n.dockerignore\n", []string{"/keep/", "/keep/this/", "/keep/this/x", "/keep/other"}},
		{"leading slash and dot", "# keep/other\n\n/drop\n./keep/this/\n.dockerignore\n", []string{"/keep/", "/keep/other"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{".dockerignore": tc.ignore}
			for k, v := range tree {
				files[k] = v
			}
			wantListing(t, openDir(t, files).FS(), tc.want...)
		})
	}
}

func TestDockerfileIgnoreFileWins(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		".dockerignore":                    "a\n",
		"build/Containerfile":              "FROM busybox\n",
		"build/Containerfile.dockerignore": "b\nbuild\n",
		"a":                                "a",
		"b":                                "b",
	})
	c, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.LoadIgnore(filepath.Join(dir, "build/Containerfile")); err != nil {
		t.Fatal(err)
	}
	wantListing(t, c.FS(), "/.dockerignore", "/a")

	// A Dockerfile without its own ignore file uses the context's.
	if err := c.LoadIgnore(filepath.Join(dir, "Dockerfile")); err != nil {
		t.Fatal(err)
	}
	wantListing(t, c.FS(), "/.dockerignore", "/b", "/build/", "/build/Containerfile", "/build/Containerfile.dockerignore")
}

func TestDockerignoreSymlinks(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "ignore"), []byte("*\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := openDir(t, map[string]string{
		".dockerignore": "secret\ndir/hidden\n",
		"secret":        "s",
		"to-secret":     "->secret",
		"abs-secret":    "->/secret",
		"dir/hidden":    "h",
		"dir/visible":   "v",
		"to-dir":        "->dir",
		"etc/passwd":    "context passwd",
		"passwd":        "->/etc/passwd",
	})
	// Links resolve in the filtered view, inside the context: a link to a
	// hidden file is sent, but dangles.
	wantHidden(t, c.FS(), "/secret", "/to-dir/hidden")
	for _, link := range []string{"/to-secret", "/abs-secret"} {
		if e, err := c.FS().Lstat(link); err != nil || !e.IsSymlink() {
			t.Errorf("Lstat(%q) = %v, %v", link, e, err)
		}
		if _, err := c.FS().Open(link); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open(%q) = %v, want not exist", link, err)
		}
	}
	if got := readFile(t, c.FS(), "/to-dir/visible"); got != "v" {
		t.Errorf("to-dir/visible = %q", got)
	}
	if got := readFile(t, c.FS(), "/passwd"); got != "context passwd" {
		t.Errorf("passwd = %q", got)
	}

	// A .dockerignore that is a symlink is read inside the context.
	c = openDir(t, map[string]string{
		".dockerignore": "->" + filepath.Join(outside, "ignore"),
		"file":          "f",
	})
	wantListing(t, c.FS(), "/.dockerignore", "/file")
}

func TestDockerignoreErrors(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{".dockerignore": "a\n!\n"})
	c, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	err = c.LoadIgnore("")
	if err == nil || !strings.Contains(err.Error(), `ignore file ".dockerignore"`) || !strings.Contains(err.Error(), "illegal exclusion pattern") {
		t.Errorf("LoadIgnore = %v", err)
	}
}

func TestIgnoreFSConcurrentUse(t *testing.T) {
	c := openDir(t, exceptionsTree)
	want := listing(t, openDir(t, exceptionsTree).FS())
	type result struct {
		paths []string
		err   error
	}
	done := make(chan result)
	for range 4 {
		go func() {
			paths, err := list(c.FS(), "/")
			slices.Sort(paths)
			done <- result{paths, err}
		}()
	}
	for range 4 {
		if r := <-done; r.err != nil || !slices.Equal(r.paths, want) {
			t.Errorf("concurrent listing = %q, %v; want %q", r.paths, r.err, want)
		}
	}
}
