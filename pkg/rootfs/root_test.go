package rootfs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/testutil"
	"golang.org/x/sys/unix"
)

// hostileRoot makes a root next to a sentinel directory holding a secret,
// with symlinks that lead out of the root on the host: "esc" to the
// sentinel by its absolute host path, "up" climbing with "..", "secret" to
// the secret file, "abs" to /etc (the root's). It returns the opened root,
// the sentinel and a function that fails the test if the sentinel or the
// directory around the root changed.
func hostileRoot(t *testing.T) (*Root, string, func()) {
	t.Helper()
	outer := t.TempDir()
	sentinel := filepath.Join(outer, "sentinel")
	dir := filepath.Join(outer, "root")
	for _, d := range []string{sentinel, dir, filepath.Join(sentinel, "sub"), filepath.Join(dir, "etc")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeHost(t, filepath.Join(sentinel, "secret"), "host secret")
	writeHost(t, filepath.Join(dir, "etc/passwd"), "root:x:0:0::/root:/bin/sh\n")
	for name, target := range map[string]string{
		"esc":    sentinel,
		"up":     strings.Repeat("../", 8),
		"secret": filepath.Join(sentinel, "secret"),
		"abs":    "/etc",
		"passwd": "/etc/passwd",
	} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	before := describeTree(t, sentinel)
	r, err := OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	check := func() {
		t.Helper()
		if after := describeTree(t, sentinel); after != before {
			t.Errorf("the sentinel directory changed:\nbefore:\n%safter:\n%s", before, after)
		}
		if names, err := os.ReadDir(outer); err != nil || len(names) != 2 {
			t.Errorf("next to the root: %v, %v", names, err)
		}
	}
	return r, sentinel, check
}

func writeHost(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func wantErrIs(t *testing.T, what string, err, target error, fragments ...string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: error %v, want one wrapping %v", what, err, target)
		return
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("%s: error %q does not contain %q", what, err, f)
		}
	}
}

func TestRootMkdirAll(t *testing.T) {
	r, sentinel, check := hostileRoot(t)
	defer check()
	dir := r.Dir()

	created, err := r.MkdirAll("/a/b/c", 0o777|fs.ModeSticky, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/a", "/a/b", "/a/b/c"}; !slices.Equal(created, want) {
		t.Errorf("created %q, want %q", created, want)
	}
	// Exactly the mode asked for: the umask does not apply.
	for _, p := range []string{"a", "a/b", "a/b/c"} {
		if m := lstat(t, filepath.Join(dir, p)).Mode; m != unix.S_IFDIR|unix.S_ISVTX|0o777 {
			t.Errorf("%s: mode %o", p, m)
		}
	}
	if created, err := r.MkdirAll("a/b", 0o700, nil); err != nil || len(created) != 0 {
		t.Errorf("existing directories: created %q, %v", created, err)
	}
	if m := lstat(t, filepath.Join(dir, "a/b")).Mode; m&0o7777 != unix.S_ISVTX|0o777 {
		t.Errorf("an existing directory changed mode: %o", m)
	}

	// Nothing is created through a dangling symlink or below a file.
	_, err = r.MkdirAll("/esc/x", 0o755, nil)
	wantErrIs(t, "dangling symlink", err, fs.ErrNotExist, `creating directory "/esc/x"`, `"/esc" is a dangling symlink`)

	// Symlinks are followed inside the root, and the paths reported are
	// where the directories really are.
	for p, want := range map[string][]string{"/abs/new": {"/etc/new"}, "/up/up/top": {"/top"}} {
		created, err := r.MkdirAll(p, 0o755, nil)
		if err != nil || !slices.Equal(created, want) {
			t.Errorf("MkdirAll(%q) = %q, %v; want %q", p, created, err, want)
		}
	}
	created, err = r.MkdirAll("/up"+sentinel+"/inside", 0o755, nil)
	if err != nil || len(created) == 0 || created[len(created)-1] != sentinel+"/inside" {
		t.Errorf("MkdirAll through a climbing link = %q, %v", created, err)
	}
	if !exists(filepath.Join(dir, sentinel, "inside")) {
		t.Error("the directory was not created inside the root")
	}

	// Nothing is created below a file.
	_, err = r.MkdirAll("/etc/passwd/x", 0o755, nil)
	wantErrIs(t, "below a file", err, syscall.ENOTDIR, `"/etc/passwd" is not a directory`)
	if _, err := r.MkdirAll("/x", fs.ModeDir|0o755, nil); err == nil {
		t.Error("a mode with type bits was accepted")
	}
}

func TestRootMkdirAllOwner(t *testing.T) {
	testutil.RequireRoot(t, "chown")
	r, _, check := hostileRoot(t)
	defer check()
	if _, err := r.MkdirAll("/home/user", 0o750|fs.ModeSetgid, &Owner{UID: 1000, GID: 1001}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"home", "home/user"} {
		st := lstat(t, filepath.Join(r.Dir(), p))
		if st.Uid != 1000 || st.Gid != 1001 || st.Mode != unix.S_IFDIR|unix.S_ISGID|0o750 {
			t.Errorf("%s: owner %d:%d mode %o", p, st.Uid, st.Gid, st.Mode)
		}
	}
}

func TestRootRemove(t *testing.T) {
	r, _, check := hostileRoot(t)
	defer check()
	dir := r.Dir()
	if _, err := r.MkdirAll("/d/sub", 0o755, nil); err != nil {
		t.Fatal(err)
	}
	// A symlink is removed itself, never what it points to.
	for _, p := range []string{"esc", "/secret", "up"} {
		if err := r.Remove(p); err != nil {
			t.Errorf("Remove(%q): %v", p, err)
		}
		if exists(filepath.Join(dir, p)) {
			t.Errorf("%s still exists", p)
		}
	}
	wantErrIs(t, "non-empty directory", r.Remove("/d"), unix.ENOTEMPTY, `removing "/d"`)
	if err := r.Remove("/d/sub"); err != nil {
		t.Errorf("Remove of an empty directory: %v", err)
	}
	wantErrIs(t, "missing", r.Remove("/missing"), fs.ErrNotExist, `removing "/missing"`)
	if err := r.Remove("/"); err == nil {
		t.Error("the root was removed")
	}
	// Through a symlink in a parent: the file inside the root goes.
	if err := r.Remove("/abs/passwd"); err != nil || exists(filepath.Join(dir, "etc/passwd")) {
		t.Errorf("Remove through a symlinked parent: %v", err)
	}
}

func TestRootRemoveAll(t *testing.T) {
	r, sentinel, check := hostileRoot(t)
	defer check()
	dir := r.Dir()
	if err := os.MkdirAll(filepath.Join(dir, "tree/deep"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"tree/out": sentinel, "tree/deep/up": "../../../..", "tree/deep/secret": filepath.Join(sentinel, "secret")} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	writeHost(t, filepath.Join(dir, "tree/deep/f"), "f")
	if err := r.RemoveAll("/tree"); err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(dir, "tree")) {
		t.Error("tree still exists")
	}
	// Through climbing links, the path stays inside the root.
	if err := os.MkdirAll(filepath.Join(dir, sentinel), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := r.RemoveAll("/up/up" + sentinel); err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(dir, sentinel)) {
		t.Error("the copy of the sentinel path inside the root was not removed")
	}
	for _, p := range []string{"/missing", "/esc/secret", "/missing/below"} {
		if err := r.RemoveAll(p); err != nil {
			t.Errorf("RemoveAll(%q) = %v, want nil for a missing path", p, err)
		}
	}
	if err := r.RemoveAll("/"); err == nil {
		t.Error("RemoveAll removed the root")
	}
}

func TestRootRename(t *testing.T) {
	r, sentinel, check := hostileRoot(t)
	defer check()
	dir := r.Dir()
	if err := r.Rename("/etc/passwd", "/abs/passwd.old"); err != nil {
		t.Fatal(err)
	}
	if readFile(t, filepath.Join(dir, "etc/passwd.old")) == "" || exists(filepath.Join(dir, "etc/passwd")) {
		t.Error("the file was not renamed")
	}
	// The symlink itself moves; a destination through a dangling link fails.
	if err := r.Rename("/esc", "/esc2"); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(filepath.Join(dir, "esc2")); err != nil || target != sentinel {
		t.Errorf("esc2 -> %q, %v", target, err)
	}
	wantErrIs(t, "into a dangling link", r.Rename("/etc/passwd.old", "/esc2/stolen"), fs.ErrNotExist, `renaming to "/esc2/stolen"`)
	if err := r.Rename("/", "/x"); err == nil {
		t.Error("the root was renamed")
	}

	// Between two roots of the same filesystem.
	other, err := OpenRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := Rename(r, "/etc/passwd.old", other, "/aside"); err != nil {
		t.Fatal(err)
	}
	if readFile(t, filepath.Join(other.Dir(), "aside")) == "" {
		t.Error("the file did not move to the other root")
	}
}

func TestRootWriteFile(t *testing.T) {
	r, _, check := hostileRoot(t)
	defer check()
	dir := r.Dir()
	if err := r.WriteFile("/abs/hostname", []byte("kiln\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "etc/hostname")); got != "kiln\n" {
		t.Errorf("etc/hostname = %q", got)
	}
	// A final symlink is never written through, even one inside the root.
	wantErrIs(t, "final symlink", r.WriteFile("/passwd", []byte("x"), 0o644), unix.ELOOP, `opening "/passwd"`)
	wantErrIs(t, "final symlink out", r.WriteFile("/secret", []byte("x"), 0o644), unix.ELOOP)
	wantErrIs(t, "dangling parent", r.WriteFile("/esc/secret", []byte("x"), 0o644), fs.ErrNotExist)
	wantErrIs(t, "directory", r.WriteFile("/etc", []byte("x"), 0o644), unix.EISDIR)
	if got := readFile(t, filepath.Join(dir, "etc/passwd")); !strings.HasPrefix(got, "root:") {
		t.Errorf("etc/passwd = %q", got)
	}

	f, err := r.OpenFile("/etc/new", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(f, "new"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := r.OpenFile("/etc/new", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); !errors.Is(err, fs.ErrExist) {
		t.Errorf("O_EXCL on an existing file: %v", err)
	}

	// A named pipe is refused, without waiting for a reader or a writer.
	if err := unix.Mkfifo(filepath.Join(dir, "etc/fifo"), 0o666); err != nil {
		t.Fatal(err)
	}
	for _, flag := range []int{os.O_RDONLY, os.O_WRONLY, os.O_WRONLY | os.O_CREATE | os.O_TRUNC} {
		_, err := r.OpenFile("/etc/fifo", flag, 0o644)
		wantErrIs(t, "fifo", err, ErrSpecialFile, `opening "/etc/fifo"`, "named pipe")
	}
}

func TestRootOpenAndReadFile(t *testing.T) {
	r, _, check := hostileRoot(t)
	defer check()
	dir := r.Dir()
	// Symlinks resolve inside the root, whatever their target says.
	got, err := r.ReadFile("/passwd", 1<<20)
	if err != nil || !strings.HasPrefix(string(got), "root:x:0:0") {
		t.Errorf("ReadFile through /passwd -> /etc/passwd = %q, %v", got, err)
	}
	if _, err := r.ReadFile("/secret", 1<<20); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadFile of a link to a host file = %v, want not exist", err)
	}
	if _, err := r.ReadFile("/up/up/../etc/../passwd", 1<<20); err != nil {
		t.Errorf("ReadFile with climbing components: %v", err)
	}

	_, err = r.ReadFile("/etc/passwd", 8)
	wantErrIs(t, "over the limit", err, ErrTooLarge, `reading "/etc/passwd"`, "26 bytes, more than the limit of 8 bytes")

	if err := unix.Mkfifo(filepath.Join(dir, "etc/fifo"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/fifo", filepath.Join(dir, "to-fifo")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/etc/fifo", "/to-fifo"} {
		_, err := r.Open(p)
		wantErrIs(t, "fifo", err, ErrSpecialFile, "named pipe")
	}
	_, err = r.ReadFile("/etc", 1<<20)
	wantErrIs(t, "directory", err, unix.EISDIR)

	d, err := r.Open("/abs")
	if err != nil {
		t.Fatal(err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	slices.Sort(names)
	if err != nil || !slices.Equal(names, []string{"fifo", "passwd"}) {
		t.Errorf("listing /abs: %q, %v", names, err)
	}
}

func TestRootRefusesDevices(t *testing.T) {
	testutil.RequireRoot(t, "mknod")
	r, _, check := hostileRoot(t)
	defer check()
	// A /dev/zero: reading it would never end.
	if err := unix.Mknod(filepath.Join(r.Dir(), "etc/zero"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 5))); err != nil {
		t.Fatal(err)
	}
	_, err := r.ReadFile("/etc/zero", 1<<20)
	wantErrIs(t, "char device", err, ErrSpecialFile, "character device")
	_, err = r.OpenFile("/etc/zero", os.O_RDONLY, 0)
	wantErrIs(t, "char device", err, ErrSpecialFile)
}

func TestRootMetadata(t *testing.T) {
	r, _, check := hostileRoot(t)
	defer check()
	dir := r.Dir()
	// Chmod and Chtimes follow symlinks inside the root.
	if err := r.Chmod("/passwd", 0o600|fs.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	if m := lstat(t, filepath.Join(dir, "etc/passwd")).Mode; m != unix.S_IFREG|unix.S_ISUID|0o600 {
		t.Errorf("etc/passwd mode %o", m)
	}
	when := time.Date(2020, 2, 2, 2, 2, 2, 0, time.UTC)
	if err := r.Chtimes("/abs", when, when); err != nil {
		t.Fatal(err)
	}
	if st := lstat(t, filepath.Join(dir, "etc")); !time.Unix(st.Mtim.Unix()).Equal(when) {
		t.Errorf("etc mtime %v", time.Unix(st.Mtim.Unix()))
	}
	wantErrIs(t, "chmod through an escaping link", r.Chmod("/secret", 0o777), fs.ErrNotExist, `chmod "/secret"`)
	wantErrIs(t, "chtimes through an escaping link", r.Chtimes("/esc/secret", when, when), fs.ErrNotExist)

	fi, err := r.Lstat("/abs")
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 || fi.Name() != "abs" {
		t.Errorf("Lstat(/abs) = %v, %v", fi, err)
	}
	fi, err = r.Stat("/abs")
	if err != nil || !fi.IsDir() {
		t.Errorf("Stat(/abs) = %v, %v", fi, err)
	}
	if _, ok := fi.Sys().(*syscall.Stat_t); !ok {
		t.Errorf("Stat's Sys() is %T, want *syscall.Stat_t like os.Stat", fi.Sys())
	}
	if _, err := r.Stat("/secret"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat of a link to a host file = %v", err)
	}
	for p, want := range map[string]string{"/abs": "/etc", "/up/up/abs/../abs/passwd": "/etc/passwd", "/": "/"} {
		if got, err := r.Resolve(p); err != nil || got != want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", p, got, err, want)
		}
	}
	if _, err := r.Resolve("/esc"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Resolve of a dangling link = %v", err)
	}
}

func TestRootLchown(t *testing.T) {
	testutil.RequireRoot(t, "chown")
	r, _, check := hostileRoot(t)
	defer check()
	if err := r.Lchown("/passwd", 7, 8); err != nil {
		t.Fatal(err)
	}
	if st := lstat(t, filepath.Join(r.Dir(), "passwd")); st.Uid != 7 || st.Gid != 8 {
		t.Errorf("the link is owned by %d:%d", st.Uid, st.Gid)
	}
	if st := lstat(t, filepath.Join(r.Dir(), "etc/passwd")); st.Uid != 0 {
		t.Errorf("Lchown followed the link: etc/passwd owned by %d", st.Uid)
	}
}

func TestReadHostFile(t *testing.T) {
	dir := t.TempDir()
	writeHost(t, filepath.Join(dir, "Dockerfile"), "FROM scratch\n")
	if err := os.Symlink("Dockerfile", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	// A path the user gave: its symlinks are the user's.
	if got, err := ReadHostFile(filepath.Join(dir, "link"), 1<<10); err != nil || string(got) != "FROM scratch\n" {
		t.Errorf("ReadHostFile through a link = %q, %v", got, err)
	}
	_, err := ReadHostFile(filepath.Join(dir, "Dockerfile"), 4)
	wantErrIs(t, "over the limit", err, ErrTooLarge, "more than the limit of 4 bytes")
	if err := unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = ReadHostFile(filepath.Join(dir, "fifo"), 1<<20)
	wantErrIs(t, "fifo", err, ErrSpecialFile, "named pipe", filepath.Join(dir, "fifo"))
	_, err = ReadHostFile("/dev/zero", 1<<20)
	wantErrIs(t, "/dev/zero", err, ErrSpecialFile, "character device")
	_, err = ReadHostFile(dir, 1<<20)
	wantErrIs(t, "directory", err, unix.EISDIR)
	_, err = ReadHostFile(filepath.Join(dir, "missing"), 1<<20)
	wantErrIs(t, "missing", err, fs.ErrNotExist)
	if got := formatSize(16 << 20); got != "16 MiB" {
		t.Errorf("formatSize = %q", got)
	}
}

// Clear empties a directory except the kept paths and the directories that
// hold them, and never follows a symlink out of the root.
func TestClearKeepsWhatItIsTold(t *testing.T) {
	outer := t.TempDir()
	dir := filepath.Join(outer, "root")
	outside := filepath.Join(outer, "outside")
	for _, d := range []string{dir, outside, filepath.Join(dir, "etc/ssl"), filepath.Join(dir, "var/lib/x"), filepath.Join(dir, "kiln/.docker")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"outside/secret", "root/etc/passwd", "root/etc/ssl/ca.pem", "root/var/lib/x/y", "root/kiln/.docker/config.json", "root/kiln/executor"} {
		if err := os.WriteFile(filepath.Join(outer, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(dir, "escape")); err != nil {
		t.Fatal(err)
	}
	rt, err := OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	keep := func(p string) bool {
		return p == "/etc/ssl" || p == "/kiln/.docker" || strings.HasPrefix(p, "/kiln/.docker/")
	}
	if err := rt.Clear("/", keep); err != nil {
		t.Fatal(err)
	}
	var left []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if p != dir {
			rel, _ := filepath.Rel(dir, p)
			left = append(left, rel)
		}
		return nil
	})
	if got, want := strings.Join(left, " "), "etc etc/ssl etc/ssl/ca.pem kiln kiln/.docker kiln/.docker/config.json"; got != want {
		t.Errorf("left %q, want %q", got, want)
	}
	if _, err := os.Stat(filepath.Join(outside, "secret")); err != nil {
		t.Errorf("the file behind a symlink went: %v", err)
	}
}
