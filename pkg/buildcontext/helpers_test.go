package buildcontext

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/pkg/fsview"
)

// writeTree creates files under dir: a name ending in "/" is a directory,
// a value starting with "->" a symlink to the rest, anything else a file
// with that content.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case strings.HasSuffix(name, "/"):
			err = os.MkdirAll(p, 0o755)
		case strings.HasPrefix(content, "->"):
			err = os.Symlink(strings.TrimPrefix(content, "->"), p)
		default:
			err = os.WriteFile(p, []byte(content), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// openDir opens a directory context holding files, with its ignore file
// loaded.
func openDir(t *testing.T, files map[string]string) *Context {
	t.Helper()
	dir := t.TempDir()
	writeTree(t, dir, files)
	c, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.LoadIgnore(""); err != nil {
		t.Fatal(err)
	}
	return c
}

// listing walks fsys and returns every path it shows, directories with a
// trailing "/".
func listing(t *testing.T, fsys fsview.FS) []string {
	t.Helper()
	out, err := list(fsys, "/")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func list(fsys fsview.FS, dir string) ([]string, error) {
	entries, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("ReadDir(%q): %w", dir, err)
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() {
			out = append(out, e.Path)
			continue
		}
		sub, err := list(fsys, e.Path)
		if err != nil {
			return nil, err
		}
		out = append(append(out, e.Path+"/"), sub...)
	}
	return out, nil
}

func wantListing(t *testing.T, fsys fsview.FS, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := listing(t, fsys); !slices.Equal(got, want) {
		t.Errorf("context shows\n  %q\nwant\n  %q", got, want)
	}
}

// wantHidden checks that Lstat, Open and ReadDir all report each name as
// missing.
func wantHidden(t *testing.T, fsys fsview.FS, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := fsys.Lstat(n); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Lstat(%q) = %v, want not exist", n, err)
		}
		if rc, err := fsys.Open(n); !errors.Is(err, fs.ErrNotExist) {
			if err == nil {
				rc.Close()
			}
			t.Errorf("Open(%q) = %v, want not exist", n, err)
		}
		if _, err := fsys.ReadDir(n); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadDir(%q) = %v, want not exist", n, err)
		}
	}
}

func readFile(t *testing.T, fsys fsview.FS, name string) string {
	t.Helper()
	rc, err := fsys.Open(name)
	if err != nil {
		t.Fatalf("Open(%q): %v", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
