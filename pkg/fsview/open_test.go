package fsview

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/testutil"
)

// TestOpenBeneath runs the openat2 path and the fallback used where openat2
// is missing on the same tree: both open what a walk saw and refuse any
// symlink on the way, whatever it points to.
func TestOpenBeneath(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	for _, d := range []string{"a/b", "real"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "a/b/f"), []byte("f"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"a/up": "..", "a/link": "b", "abs": outside, "a/b/flink": "f", "self": "."} {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	rootFd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rootFd)
	impls := map[string]func(int, string, int) (int, error){
		"openat2": OpenBeneath,
		"fallback": func(fd int, p string, flags int) (int, error) {
			rel := strings.TrimPrefix(Clean(p), "/")
			if rel == "" {
				rel = "."
			}
			return openBeneathFallback(fd, rel, flags)
		},
	}
	for name, open := range impls {
		for _, p := range []string{"/", "a", "/a/b/f", "a/../a/b/./f", "/../../a/b"} {
			fd, err := open(rootFd, p, unix.O_RDONLY)
			if err != nil {
				t.Errorf("%s: %q: %v", name, p, err)
				continue
			}
			unix.Close(fd)
		}
		for p, want := range map[string]error{
			"/a/link/f":   unix.ELOOP,
			"/a/up/a/b/f": unix.ELOOP,
			"/abs":        unix.ELOOP,
			"/a/b/flink":  unix.ELOOP,
			"/self/a":     unix.ELOOP,
			"/missing":    unix.ENOENT,
			"/a/b/f/x":    unix.ENOTDIR,
		} {
			fd, err := open(rootFd, p, unix.O_RDONLY)
			if err == nil {
				unix.Close(fd)
			}
			// A symlink as a parent may also be reported as not a directory.
			if !errors.Is(err, want) && !(want == unix.ELOOP && errors.Is(err, unix.ENOTDIR)) {
				t.Errorf("%s: %q: %v, want %v", name, p, err, want)
			}
		}
	}
}

// TestDirFSOpenRegularOnly: a named pipe would block Open until something
// writes to it, a device could be read forever.
func TestDirFSOpenRegularOnly(t *testing.T) {
	root := t.TempDir()
	if err := unix.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/fifo", filepath.Join(root, "to-fifo")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	d, err := NewDirFS(root)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"/fifo": "named pipe", "/to-fifo": "named pipe", "/dir": "directory"} {
		rc, err := d.Open(p)
		if err == nil {
			rc.Close()
		}
		if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%q) = %v, want ErrNotRegular (%s)", p, err, want)
		}
	}
}

func TestDirFSOpenRefusesDevices(t *testing.T) {
	testutil.RequireRoot(t, "mknod")
	root := t.TempDir()
	if err := unix.Mknod(filepath.Join(root, "zero"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 5))); err != nil {
		t.Fatal(err)
	}
	d, err := NewDirFS(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Open("/zero"); !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), "character device") {
		t.Errorf("Open of a /dev/zero = %v", err)
	}
}
