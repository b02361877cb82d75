package snapshot

import (
	"archive/tar"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

func TestDiffReportsChanges(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root+"/etc/passwd", "root:x:0:0::/root:/bin/sh\n")
	writeFile(t, root+"/usr/bin/tool", "version 1")
	writeFile(t, root+"/usr/lib/libx.so", "lib")
	writeFile(t, root+"/var/cache/apt/pkgcache.bin", "cache")
	writeFile(t, root+"/var/cache/apt/archives/partial/x.deb", "deb")
	writeFile(t, root+"/opt/app/untouched", "same")
	must(t, os.Symlink("tool", root+"/usr/bin/alias"))
	s := New(root)
	baseline(t, s)

	writeFile(t, root+"/etc/new.conf", "new")
	writeFile(t, root+"/etc/.wh.passwd", "would delete etc/passwd")
	// Same size, mtime restored: only ctime tells.
	st, err := os.Stat(root + "/usr/bin/tool")
	must(t, err)
	writeFile(t, root+"/usr/bin/tool", "version 2")
	must(t, os.Chtimes(root+"/usr/bin/tool", st.ModTime(), st.ModTime()))
	must(t, os.Chmod(root+"/usr/lib/libx.so", 0o755))
	must(t, os.RemoveAll(root+"/var/cache/apt"))
	must(t, os.Remove(root+"/usr/bin/alias"))
	must(t, os.Symlink("/usr/bin/tool", root+"/usr/bin/alias"))

	layer, stats := diff(t, s)
	entries := readLayer(t, layer)
	want := strings.Join([]string{
		"etc 5", "etc/new.conf 0",
		"usr 5", "usr/bin 5", "usr/bin/alias 2", "usr/bin/tool 0", "usr/lib 5", "usr/lib/libx.so 0",
		"var 5", "var/cache 5", "var/cache/.wh.apt 0",
	}, "\n")
	if got := names(entries); got != want {
		t.Errorf("layer entries:\n%s\nwant:\n%s", got, want)
	}
	for _, e := range entries {
		switch e.hdr.Name {
		case "usr/bin/tool":
			if e.body != "version 2" || !e.hdr.ModTime.Equal(st.ModTime()) {
				t.Errorf("tool: %q, mtime %v", e.body, e.hdr.ModTime)
			}
		case "usr/lib/libx.so":
			if e.body != "lib" || e.hdr.Mode != 0o755 {
				t.Errorf("libx.so: %q, mode %o", e.body, e.hdr.Mode)
			}
		case "usr/bin/alias":
			if e.hdr.Linkname != "/usr/bin/tool" {
				t.Errorf("alias -> %q", e.hdr.Linkname)
			}
		}
	}
	// Changed: the three files and the directories whose listing changed
	// (etc, usr/bin, var/cache).
	if got := stats.String(); got != "1 added, 6 changed, 1 deleted (11 entries, 15 bytes)" {
		t.Errorf("stats = %s", got)
	}

	// The new state is the baseline now: nothing more to report.
	if layer, stats := diff(t, s); layer.Len() != 1024 || stats != (Stats{}) {
		t.Errorf("second diff: %s, %+v", names(readLayer(t, layer)), stats)
	}
}

// TestDiffSeesChangesRightAfterBaseline rewrites a file within the clock
// tick of the baseline walk, keeping size and mtime: only a ctime from a
// later tick can reveal it.
func TestDiffSeesChangesRightAfterBaseline(t *testing.T) {
	root := t.TempDir()
	for range 20 {
		writeFile(t, root+"/f", "aaaa")
		s := New(root)
		baseline(t, s)
		st, err := os.Stat(root + "/f")
		must(t, err)
		writeFile(t, root+"/f", "bbbb")
		must(t, os.Chtimes(root+"/f", st.ModTime(), st.ModTime()))
		if _, stats := diff(t, s); stats.Changed != 1 {
			t.Fatalf("a rewrite right after the baseline went unseen: %+v", stats)
		}
	}
}

func TestDiffDirectories(t *testing.T) {
	root := t.TempDir()
	must(t, os.MkdirAll(root+"/d/sub", 0o755))
	writeFile(t, root+"/d/keep", "k")
	s := New(root)
	baseline(t, s)

	// A mount stub created and removed, the directory's mtime restored:
	// only its ctime moved, which is no change.
	st, err := os.Stat(root + "/d")
	must(t, err)
	must(t, os.Mkdir(root+"/d/stub", 0o755))
	must(t, os.Remove(root+"/d/stub"))
	must(t, os.Chtimes(root+"/d", st.ModTime(), st.ModTime()))
	if layer, _ := diff(t, s); layer.Len() != 1024 {
		t.Errorf("a ctime-only directory change was written: %s", names(readLayer(t, layer)))
	}

	must(t, os.Chmod(root+"/d/sub", 0o700))
	layer, _ := diff(t, s)
	if got := names(readLayer(t, layer)); got != "d 5\nd/sub 5" {
		t.Errorf("chmod of a directory: %s", got)
	}

	if !xattrsSupported(t, root) {
		t.Skip("no user xattrs on the test filesystem")
	}
	must(t, unix.Lsetxattr(root+"/d/sub", "user.label", []byte("v"), 0))
	layer, _ = diff(t, s)
	entries := readLayer(t, layer)
	if names(entries) != "d 5\nd/sub 5" || entries[1].hdr.PAXRecords["SCHILY.xattr.user.label"] != "v" {
		t.Errorf("xattr on a directory: %s %v", names(entries), entries[1].hdr.PAXRecords)
	}
	must(t, unix.Lremovexattr(root+"/d/sub", "user.label"))
	layer, _ = diff(t, s)
	if entries := readLayer(t, layer); names(entries) != "d 5\nd/sub 5" || entries[1].hdr.PAXRecords["SCHILY.xattr.user.label"] != "" {
		t.Errorf("xattr removed from a directory: %s", names(entries))
	}
}

func TestDiffTypeChanges(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root+"/dir-to-file/child", "c")
	writeFile(t, root+"/file-to-dir", "f")
	must(t, os.MkdirAll(root+"/real", 0o755))
	must(t, os.Symlink("real", root+"/link-to-dir"))
	s := New(root)
	baseline(t, s)

	must(t, os.RemoveAll(root+"/dir-to-file"))
	writeFile(t, root+"/dir-to-file", "now a file")
	must(t, os.Remove(root+"/file-to-dir"))
	writeFile(t, root+"/file-to-dir/inner", "i")
	must(t, os.Remove(root+"/link-to-dir"))
	must(t, os.Mkdir(root+"/link-to-dir", 0o755))

	layer, stats := diff(t, s)
	// No whiteouts: each new entry replaces the old one by name.
	want := "dir-to-file 0\nfile-to-dir 5\nfile-to-dir/inner 0\nlink-to-dir 5"
	if got := names(readLayer(t, layer)); got != want {
		t.Errorf("layer:\n%s\nwant:\n%s", got, want)
	}
	if stats.Changed != 3 || stats.Added != 1 || stats.Deleted != 0 {
		t.Errorf("stats = %+v", stats)
	}
}

func TestDiffHardLinks(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root+"/usr/bin/python3.11", "python")
	writeFile(t, root+"/a/d1/f", "linked")
	must(t, os.Mkdir(root+"/b", 0o755))
	must(t, os.Link(root+"/a/d1/f", root+"/b/g"))
	s := New(root)
	baseline(t, s)

	// A new link to an unchanged file: the link count moved, so both
	// names are written, the second as a link to the first.
	must(t, os.Link(root+"/usr/bin/python3.11", root+"/usr/bin/python3"))
	// Renaming a directory changes none of the inodes inside; the renamed
	// name is new and its unchanged sibling must come along.
	must(t, os.Rename(root+"/a/d1", root+"/a/d2"))

	layer, _ := diff(t, s)
	entries := readLayer(t, layer)
	want := strings.Join([]string{
		"a 5", "a/.wh.d1 0", "a/d2 5", "a/d2/f 0",
		"b 5", "b/g 1 -> a/d2/f",
		"usr 5", "usr/bin 5", "usr/bin/python3 0", "usr/bin/python3.11 1 -> usr/bin/python3",
	}, "\n")
	if got := names(entries); got != want {
		t.Errorf("layer:\n%s\nwant:\n%s", got, want)
	}
}

func TestDiffIgnore(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root+"/kiln/cache/blob", "b")
	writeFile(t, root+"/proc/1/status", "s")
	writeFile(t, root+"/etc/hosts", "h")
	var mu sync.Mutex
	var asked []string
	s := New(root, WithIgnore(func(p string) bool {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, p)
		return p == "/kiln" || p == "/proc" || p == "/etc/hosts"
	}))
	baseline(t, s)
	for _, p := range asked {
		if strings.HasPrefix(p, "/kiln/") || strings.HasPrefix(p, "/proc/") {
			t.Errorf("the walk entered an ignored directory: %q", p)
		}
	}

	writeFile(t, root+"/kiln/cache/blob2", "b")
	must(t, os.RemoveAll(root+"/proc"))
	writeFile(t, root+"/etc/hosts", "changed")
	writeFile(t, root+"/etc/hostname", "n")
	layer, _ := diff(t, s)
	if got := names(readLayer(t, layer)); got != "etc 5\netc/hostname 0" {
		t.Errorf("layer: %s", got)
	}
}

// Without a baseline, Diff writes the whole tree: how in-place builds record
// what the container shipped.
func TestDiffWithoutBaselineWritesEverything(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root+"/etc/ssl/ca.pem", "ca")
	writeFile(t, root+"/kiln/executor", "x")
	s := New(root, WithIgnore(func(p string) bool { return p == "/kiln" }))
	layer, stats := diff(t, s)
	if got := names(readLayer(t, layer)); got != "etc 5\netc/ssl 5\netc/ssl/ca.pem 0" {
		t.Errorf("layer: %s", got)
	}
	if stats.Added != 3 || stats.Deleted != 0 {
		t.Errorf("stats %s", stats)
	}
}

// A path that becomes ignored after the baseline (a VOLUME declared since)
// is not reported as deleted.
func TestDiffPathBecomingIgnoredIsNotDeleted(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root+"/vol/data", "d")
	var volumes []string
	s := New(root, WithIgnore(func(p string) bool {
		for _, v := range volumes {
			if p == v || strings.HasPrefix(p, v+"/") {
				return true
			}
		}
		return false
	}))
	baseline(t, s)
	volumes = []string{"/vol"}
	writeFile(t, root+"/vol/data", "changed in a volume")
	writeFile(t, root+"/new", "n")
	layer, stats := diff(t, s)
	if got := names(readLayer(t, layer)); got != "new 0" {
		t.Errorf("layer: %s", got)
	}
	if stats.Deleted != 0 {
		t.Errorf("stats %s", stats)
	}
}

func TestDiffSpecialFiles(t *testing.T) {
	root := t.TempDir()
	s := New(root)
	baseline(t, s)
	// Sockets are skipped, fifos and devices recorded.
	l, err := net.Listen("unix", root+"/sock")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	must(t, unix.Mkfifo(root+"/fifo", 0o600))
	want := "fifo 6"
	if os.Geteuid() == 0 {
		must(t, unix.Mknod(root+"/null", unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
		want += "\nnull 3"
	}
	layer, _ := diff(t, s)
	entries := readLayer(t, layer)
	if got := names(entries); got != want {
		t.Errorf("layer: %s, want %s", got, want)
	}
	if len(entries) == 2 && (entries[1].hdr.Devmajor != 1 || entries[1].hdr.Devminor != 3) {
		t.Errorf("device %d:%d", entries[1].hdr.Devmajor, entries[1].hdr.Devminor)
	}
}

func TestDiffErrors(t *testing.T) {
	root := t.TempDir()
	if err := New(filepath.Join(root, "missing")).Baseline(context.Background()); err == nil {
		t.Error("Baseline of a missing root succeeded")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := New(root).Baseline(ctx); err == nil {
		t.Error("Baseline with a cancelled context succeeded")
	}
	s := New(root)
	baseline(t, s)
	writeFile(t, root+"/f", "x")
	if _, err := s.Diff(context.Background(), failingWriter{}); err == nil {
		t.Error("a write error was not reported")
	}
	// The failed Diff left the baseline alone: the change is still there.
	if _, stats := diff(t, s); stats.Added != 1 {
		t.Errorf("after a failed Diff: %+v", stats)
	}
}

type failingWriter struct{}

func (failingWriter) WriteHeader(*tar.Header) error { return os.ErrClosed }
func (failingWriter) Write([]byte) (int, error)     { return 0, os.ErrClosed }
