package rootfs

import (
	"archive/tar"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/pkg/fsview"
	"golang.org/x/sys/unix"
)

func TestApplyEntryTypes(t *testing.T) {
	root := t.TempDir()
	dirTime := epoch.Add(time.Hour + 123*time.Nanosecond)
	fileTime := epoch.Add(2 * time.Hour)
	linkTime := epoch.Add(3 * time.Hour)
	apply(t, root,
		dirEntry("usr", 0o755).with(func(h *tar.Header) { h.ModTime = dirTime }),
		dirEntry("usr/bin", 0o750),
		fileEntry("usr/bin/tool", "#!/bin/sh\n").with(func(h *tar.Header) { h.Mode = 0o4755; h.ModTime = fileTime }),
		fileEntry("usr/bin/group", "g").with(func(h *tar.Header) { h.Mode = 0o2711 }),
		dirEntry("tmp", 0o1777),
		symlinkEntry("usr/bin/abs", "/etc/passwd").with(func(h *tar.Header) { h.ModTime = linkTime }),
		symlinkEntry("usr/bin/rel", "../../nowhere"),
		fileEntry("usr/bin/empty", ""),
		fileEntry("usr/bin/shared", "w").with(func(h *tar.Header) { h.Mode = 0o666 }),
		hardlinkEntry("usr/bin/tool2", "usr/bin/tool"),
		newEntry(tar.TypeFifo, "run.fifo", 0o600),
		fileEntry("implied/parent/file", "x"),
	)

	if got := readFile(t, filepath.Join(root, "usr/bin/tool")); got != "#!/bin/sh\n" {
		t.Errorf("content = %q", got)
	}
	modes := map[string]uint32{
		"usr":            unix.S_IFDIR | 0o755,
		"usr/bin":        unix.S_IFDIR | 0o750,
		"usr/bin/tool":   unix.S_IFREG | 0o4755,
		"usr/bin/group":  unix.S_IFREG | 0o2711,
		"tmp":            unix.S_IFDIR | 0o1777,
		"usr/bin/empty":  unix.S_IFREG | 0o644,
		"usr/bin/shared": unix.S_IFREG | 0o666,
		"run.fifo":       unix.S_IFIFO | 0o600,
		"implied":        unix.S_IFDIR | 0o755,
		"implied/parent": unix.S_IFDIR | 0o755,
	}
	for p, want := range modes {
		if got := lstat(t, filepath.Join(root, p)).Mode; got != want {
			t.Errorf("%s: mode %o, want %o", p, got, want)
		}
	}
	for p, want := range map[string]string{"usr/bin/abs": "/etc/passwd", "usr/bin/rel": "../../nowhere"} {
		if got, err := os.Readlink(filepath.Join(root, p)); err != nil || got != want {
			t.Errorf("%s: link %q, %v; want %q", p, got, err, want)
		}
	}
	tool, tool2 := lstat(t, filepath.Join(root, "usr/bin/tool")), lstat(t, filepath.Join(root, "usr/bin/tool2"))
	if tool.Ino != tool2.Ino || tool.Nlink != 2 {
		t.Errorf("hard link: inodes %d, %d, nlink %d", tool.Ino, tool2.Ino, tool.Nlink)
	}
	// Times: directories after their content was written, symlinks
	// themselves, nanoseconds kept.
	for p, want := range map[string]time.Time{"usr": dirTime, "usr/bin": epoch, "usr/bin/tool": fileTime, "usr/bin/abs": linkTime} {
		st := lstat(t, filepath.Join(root, p))
		if got := time.Unix(st.Mtim.Unix()); !got.Equal(want) {
			t.Errorf("%s: mtime %v, want %v", p, got, want)
		}
	}
}

func TestApplyOwnershipAndDevices(t *testing.T) {
	testutil.RequireRoot(t, "chown and mknod")
	root := t.TempDir()
	apply(t, root,
		dirEntry("d", 0o755).with(func(h *tar.Header) { h.Uid, h.Gid = 101, 102 }),
		fileEntry("d/suid", "s").with(func(h *tar.Header) { h.Mode, h.Uid, h.Gid = 0o4755, 1000, 1001 }),
		symlinkEntry("d/link", "suid").with(func(h *tar.Header) { h.Uid, h.Gid = 7, 8 }),
		newEntry(tar.TypeChar, "d/null", 0o666).with(func(h *tar.Header) { h.Devmajor, h.Devminor = 1, 3 }),
		newEntry(tar.TypeBlock, "d/loop", 0o660).with(func(h *tar.Header) { h.Devmajor = 7 }),
		// New entries in a setgid directory get its group unless chowned.
		dirEntry("sg", 0o2775).with(func(h *tar.Header) { h.Gid = 50 }),
		fileEntry("sg/root-owned", "r"),
		fileEntry("late/before", "b"),
		dirEntry("late", 0o2775).with(func(h *tar.Header) { h.Gid = 60 }),
		fileEntry("late/after", "a"),
	)
	for p, want := range map[string][2]uint32{
		"d": {101, 102}, "d/suid": {1000, 1001}, "d/link": {7, 8},
		"sg": {0, 50}, "sg/root-owned": {0, 0}, "late": {0, 60}, "late/before": {0, 0}, "late/after": {0, 0},
	} {
		st := lstat(t, filepath.Join(root, p))
		if st.Uid != want[0] || st.Gid != want[1] {
			t.Errorf("%s: owner %d:%d, want %d:%d", p, st.Uid, st.Gid, want[0], want[1])
		}
	}
	// chmod comes after chown, which would have cleared setuid.
	if m := lstat(t, filepath.Join(root, "d/suid")).Mode; m != unix.S_IFREG|0o4755 {
		t.Errorf("setuid file mode %o", m)
	}
	null := lstat(t, filepath.Join(root, "d/null"))
	if null.Mode != unix.S_IFCHR|0o666 || unix.Major(null.Rdev) != 1 || unix.Minor(null.Rdev) != 3 {
		t.Errorf("char device: mode %o rdev %d:%d", null.Mode, unix.Major(null.Rdev), unix.Minor(null.Rdev))
	}
	if loop := lstat(t, filepath.Join(root, "d/loop")); loop.Mode != unix.S_IFBLK|0o660 || unix.Major(loop.Rdev) != 7 {
		t.Errorf("block device: mode %o rdev %d", loop.Mode, loop.Rdev)
	}
}

func TestApplyXattrs(t *testing.T) {
	root := t.TempDir()
	if err := unix.Lsetxattr(root, "user.probe", []byte("1"), 0); err != nil {
		t.Skipf("filesystem of %s has no user xattrs: %v", root, err)
	}
	xattr := func(kv ...string) func(h *tar.Header) {
		return func(h *tar.Header) {
			h.PAXRecords = map[string]string{}
			for i := 0; i < len(kv); i += 2 {
				h.PAXRecords["SCHILY.xattr."+kv[i]] = kv[i+1]
			}
		}
	}
	apply(t, root,
		dirEntry("d", 0o755).with(xattr("user.a", "1", "user.b", "2")),
		fileEntry("d/f", "x").with(xattr("user.mime", "text/plain")),
	)
	want := map[string]map[string]string{
		"d":   {"user.a": "1", "user.b": "2"},
		"d/f": {"user.mime": "text/plain"},
	}
	check := func() {
		t.Helper()
		for p, w := range want {
			got, err := fsview.ReadXattrs(filepath.Join(root, p))
			if err != nil || len(got) != len(w) {
				t.Errorf("%s: xattrs %v, %v; want %v", p, got, err, w)
				continue
			}
			for k, v := range w {
				if got[k] != v {
					t.Errorf("%s: xattr %s = %q, want %q", p, k, got[k], v)
				}
			}
		}
	}
	check()
	// A later layer's entry for the directory describes it whole: user.b
	// goes, user.a changes, and the content stays.
	apply(t, root, dirEntry("d", 0o755).with(xattr("user.a", "3")))
	want["d"] = map[string]string{"user.a": "3"}
	check()

	if os.Geteuid() == 0 {
		// A file capability survives the chown that precedes it.
		capability := string([]byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
		apply(t, root, fileEntry("ping", "p").with(func(h *tar.Header) {
			h.Uid = 1000
			xattr("security.capability", capability)(h)
		}))
		got, err := fsview.ReadXattrs(filepath.Join(root, "ping"))
		if err != nil || got["security.capability"] != capability {
			t.Errorf("security.capability = %q, %v", got["security.capability"], err)
		}
	}
}

func TestApplyReplacements(t *testing.T) {
	root := t.TempDir()
	apply(t, root,
		dirEntry("was-dir", 0o755),
		dirEntry("was-dir/sub", 0o755),
		fileEntry("was-dir/sub/f", "deep"),
		fileEntry("was-file", "file"),
		dirEntry("kept", 0o755),
		fileEntry("kept/lower.txt", "lower"),
		dirEntry("real", 0o755),
		symlinkEntry("dirlink", "real"),
		fileEntry("target", "t"),
		symlinkEntry("was-link", "target"),
	)
	newTime := epoch.Add(48 * time.Hour)
	apply(t, root,
		fileEntry("was-dir", "now a file"),
		dirEntry("was-file", 0o700),
		fileEntry("was-file/inner", "inner"),
		dirEntry("kept", 0o711).with(func(h *tar.Header) { h.ModTime = newTime }),
		dirEntry("dirlink", 0o755),
		fileEntry("was-link", "regular"),
	)
	if got := readFile(t, filepath.Join(root, "was-dir")); got != "now a file" {
		t.Errorf("was-dir = %q", got)
	}
	if got := readFile(t, filepath.Join(root, "was-file/inner")); got != "inner" {
		t.Errorf("was-file/inner = %q", got)
	}
	kept := lstat(t, filepath.Join(root, "kept"))
	if kept.Mode != unix.S_IFDIR|0o711 || !time.Unix(kept.Mtim.Unix()).Equal(newTime) {
		t.Errorf("kept: mode %o mtime %v", kept.Mode, time.Unix(kept.Mtim.Unix()))
	}
	if got := readFile(t, filepath.Join(root, "kept/lower.txt")); got != "lower" {
		t.Errorf("an entry for an existing directory lost its content: %q", got)
	}
	// The final component is never followed: the symlink itself is replaced.
	if st := lstat(t, filepath.Join(root, "dirlink")); st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Errorf("dirlink: mode %o, want a directory", st.Mode)
	}
	if got := readFile(t, filepath.Join(root, "target")); got != "t" {
		t.Errorf("a file entry wrote through a symlink: target = %q", got)
	}
	if st := lstat(t, filepath.Join(root, "was-link")); st.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Errorf("was-link: mode %o", st.Mode)
	}
	// A directory replaced later in the same layer leaves no pending times.
	apply(t, root, dirEntry("gone/sub", 0o755), fileEntry("gone", "file"))
	if got := readFile(t, filepath.Join(root, "gone")); got != "file" {
		t.Errorf("gone = %q", got)
	}
	// Replacing the root with a non-directory is refused.
	if err := Apply(context.Background(), root, layer(t, fileEntry(".", "x"))); err == nil {
		t.Error("a file entry for the root was accepted")
	}
}

func TestApplyWhiteouts(t *testing.T) {
	lower := []entry{
		dirEntry("wt", 0o755),
		fileEntry("wt/gone.txt", "gone"),
		dirEntry("wt/gone-dir", 0o755),
		dirEntry("wt/gone-dir/sub", 0o755),
		fileEntry("wt/gone-dir/sub/b.txt", "b"),
		fileEntry("wt/keep.txt", "keep"),
		dirEntry("wt/opq", 0o755),
		fileEntry("wt/opq/old.txt", "old"),
		dirEntry("wt/opq/olddir", 0o755),
		fileEntry("wt/opq/olddir/old2.txt", "old2"),
		dirEntry("wt/opq/mixed", 0o755),
		fileEntry("wt/opq/mixed/lower.txt", "lower"),
		fileEntry("wt/readded.txt", "lower"),
	}
	upper := []entry{
		whiteoutEntry("wt/.wh.gone.txt"),
		whiteoutEntry("wt/.wh.gone-dir"),
		whiteoutEntry("wt/.wh.never-existed"),
		whiteoutEntry("missing-dir/.wh.x"),
		// Same-layer entries survive the whiteouts, before or after them.
		fileEntry("wt/opq/before.txt", "before"),
		fileEntry("wt/opq/mixed/new.txt", "new"),
		dirEntry("wt/opq", 0o755),
		whiteoutEntry("wt/opq/.wh..wh..opq"),
		fileEntry("wt/opq/after.txt", "after"),
		whiteoutEntry("wt/.wh.readded.txt"),
		fileEntry("wt/readded.txt", "upper"),
		whiteoutEntry("wt/.wh..wh.plnk"),
	}
	// The same layer in reverse order must give the same result.
	reversed := make([]entry, len(upper))
	for i, e := range upper {
		reversed[len(upper)-1-i] = e
	}
	for name, up := range map[string][]entry{"tar order": upper, "reversed": reversed} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			apply(t, root, lower...)
			apply(t, root, up...)
			var got []string
			err := filepath.Walk(filepath.Join(root, "wt"), func(p string, fi os.FileInfo, err error) error {
				if err != nil {
					return err
				}
				rel, _ := filepath.Rel(root, p)
				if fi.Mode().IsRegular() {
					rel += "=" + readFile(t, p)
				}
				got = append(got, rel)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			want := []string{
				"wt", "wt/keep.txt=keep", "wt/opq", "wt/opq/after.txt=after", "wt/opq/before.txt=before",
				"wt/opq/mixed", "wt/opq/mixed/new.txt=new", "wt/readded.txt=upper",
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("tree after whiteouts:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if exists(filepath.Join(root, "missing-dir")) {
				t.Error("a whiteout created its directory")
			}
		})
	}
}

func TestApplyHardLinks(t *testing.T) {
	root := t.TempDir()
	apply(t, root,
		dirEntry("wt", 0o755),
		fileEntry("wt/hard1", "hard"),
		hardlinkEntry("wt/hard2", "wt/hard1"),
		fileEntry("lower.txt", "from below"),
	)
	// A later layer removes one name of the pair and links to a lower file.
	apply(t, root,
		whiteoutEntry("wt/.wh.hard1"),
		hardlinkEntry("wt/to-lower", "/lower.txt"),
	)
	st := lstat(t, filepath.Join(root, "wt/hard2"))
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 || readFile(t, filepath.Join(root, "wt/hard2")) != "hard" {
		t.Errorf("wt/hard2: mode %o nlink %d", st.Mode, st.Nlink)
	}
	if lstat(t, filepath.Join(root, "wt/to-lower")).Ino != lstat(t, filepath.Join(root, "lower.txt")).Ino {
		t.Error("wt/to-lower is not a link to lower.txt")
	}
	err := Apply(context.Background(), root, layer(t, hardlinkEntry("dangling", "wt/hard1")), WithLayerName("sha256:abc"))
	if err == nil || err.Error() != `layer sha256:abc: entry "dangling": hard link target "wt/hard1" does not exist` {
		t.Errorf("link to a missing target: %v", err)
	}
}

func TestApplyFollowsSymlinkedParentsInsideRoot(t *testing.T) {
	root := t.TempDir()
	apply(t, root,
		dirEntry("usr/bin", 0o755),
		symlinkEntry("bin", "usr/bin"),
		dirEntry("run", 0o755),
		dirEntry("var", 0o755),
		symlinkEntry("var/run", "/run"),
	)
	apply(t, root,
		fileEntry("bin/sh", "shell"),
		fileEntry("var/run/pid", "1"),
		hardlinkEntry("bin/sh2", "bin/sh"),
	)
	for p, want := range map[string]string{"usr/bin/sh": "shell", "run/pid": "1", "usr/bin/sh2": "shell"} {
		if got := readFile(t, filepath.Join(root, p)); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	if st := lstat(t, filepath.Join(root, "bin")); st.Mode&unix.S_IFMT != unix.S_IFLNK {
		t.Error("bin is no longer a symlink")
	}
}

func TestApplyIgnore(t *testing.T) {
	root := t.TempDir()
	apply(t, root,
		dirEntry("etc", 0o755),
		fileEntry("etc/hosts", "host's hosts"),
		fileEntry("etc/old", "old"),
		dirEntry("run/secrets", 0o755),
		dirEntry("var", 0o755),
		symlinkEntry("var/run", "/run"),
		symlinkEntry("secrets", "run/secrets"),
		dirEntry("kiln", 0o700),
		fileEntry("kiln/state", "state"),
	)
	ignore := func(p string) bool {
		switch p {
		case "/etc/hosts", "/run/secrets", "/kiln", "/proc":
			return true
		}
		return false
	}
	err := Apply(context.Background(), root, layer(t,
		whiteoutEntry("etc/.wh..wh..opq"),
		fileEntry("etc/hosts", "image's hosts"),
		fileEntry("etc/new", "new"),
		fileEntry("var/run/secrets/token", "stolen"),
		fileEntry("secrets/token", "stolen"),
		fileEntry("proc/sys/x", "x"),
		whiteoutEntry(".wh.kiln"),
	), WithIgnore(ignore))
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(root, "etc/hosts")); got != "host's hosts" {
		t.Errorf("ignored etc/hosts = %q", got)
	}
	if exists(filepath.Join(root, "etc/old")) || !exists(filepath.Join(root, "etc/new")) {
		t.Error("the opaque whiteout did not apply to the rest of /etc")
	}
	if exists(filepath.Join(root, "run/secrets/token")) {
		t.Error("an ignored directory was written through a symlink")
	}
	if exists(filepath.Join(root, "proc")) {
		t.Error("an ignored directory was created")
	}
	if got := readFile(t, filepath.Join(root, "kiln/state")); got != "state" {
		t.Error("a whiteout removed an ignored path")
	}

	// A replacement that would remove an ignored path fails.
	err = Apply(context.Background(), root, layer(t, fileEntry("run", "file")), WithIgnore(ignore))
	if err == nil || !strings.Contains(err.Error(), "ignored") {
		t.Errorf("replacing a directory holding an ignored path: %v", err)
	}
}

func TestApplyFilter(t *testing.T) {
	root := t.TempDir()
	apply(t, root, fileEntry("app/stale", "stale"))
	err := Apply(context.Background(), root, layer(t,
		fileEntry("app/bin/server", "srv"),
		fileEntry("app/bin/other", "o"),
		fileEntry("etc/passwd", "root"),
		whiteoutEntry("app/.wh.stale"),
	), WithFilter(func(p string) bool { return p == "/app/bin/server" }))
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(root, "app/bin/server")); got != "srv" {
		t.Errorf("server = %q", got)
	}
	for _, p := range []string{"app/bin/other", "etc", "app/stale"} {
		if exists(filepath.Join(root, p)) {
			t.Errorf("%s exists", p)
		}
	}
}

func TestApplyErrors(t *testing.T) {
	root := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Apply(ctx, root, layer(t, fileEntry("f", "x"))); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
	if err := Apply(context.Background(), filepath.Join(root, "missing"), layer(t)); err == nil {
		t.Error("a missing root was accepted")
	}
	truncated := layer(t, fileEntry("f", "0123456789"))
	truncated.Truncate(515) // inside the content
	if err := Apply(context.Background(), root, truncated, WithLayerName("sha256:t")); err == nil || !strings.HasPrefix(err.Error(), "layer sha256:t: ") {
		t.Errorf("truncated layer: %v", err)
	}
	apply(t, root, fileEntry("file", "x"))
	if err := Apply(context.Background(), root, layer(t, fileEntry("file/below", "y"))); err == nil {
		t.Error("an entry below a regular file was accepted")
	}
}
