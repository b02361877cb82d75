package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/pkg/rootfs"
)

// lowerLayer is the image the overlay tests start from.
func lowerLayer(t *testing.T) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(typ byte, name, body string, mode int64) {
		must(t, tw.WriteHeader(&tar.Header{Typeflag: typ, Name: name, Mode: mode, Size: int64(len(body)), Format: tar.FormatPAX}))
		_, err := tw.Write([]byte(body))
		must(t, err)
	}
	add(tar.TypeReg, "keep.txt", "keep", 0o644)
	add(tar.TypeReg, "modify.txt", "before", 0o644)
	add(tar.TypeReg, "chmod.sh", "#!/bin/sh", 0o644)
	add(tar.TypeReg, "gone.txt", "gone", 0o644)
	add(tar.TypeDir, "gone-dir", "", 0o755)
	add(tar.TypeReg, "gone-dir/a", "a", 0o644)
	add(tar.TypeDir, "opq", "", 0o755)
	add(tar.TypeReg, "opq/old", "old", 0o644)
	add(tar.TypeDir, "etc", "", 0o755)
	add(tar.TypeReg, "etc/conf", "conf", 0o644)
	must(t, tw.Close())
	return buf.Bytes()
}

// TestFromOverlayUpper makes changes through a real overlay mount, converts
// its upper directory and checks that the layer applied to the lower tree
// gives what the mount showed.
func TestFromOverlayUpper(t *testing.T) {
	testutil.RequireRoot(t, "mounting overlayfs")
	dir := t.TempDir()
	lower, upper, work, merged, replica := dir+"/lower", dir+"/upper", dir+"/work", dir+"/merged", dir+"/replica"
	for _, d := range []string{lower, upper, work, merged, replica} {
		must(t, os.Mkdir(d, 0o755))
	}
	for _, d := range []string{lower, replica} {
		must(t, rootfs.Apply(context.Background(), d, bytes.NewReader(lowerLayer(t))))
	}
	opts := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work + ",redirect_dir=off,index=off,metacopy=off"
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		t.Skipf("cannot mount overlayfs here: %v", err)
	}
	mounted := true
	unmount := func() {
		if mounted {
			must(t, unix.Unmount(merged, 0))
			mounted = false
		}
	}
	defer unmount()

	writeFile(t, merged+"/modify.txt", "after")
	must(t, os.Chmod(merged+"/chmod.sh", 0o755))
	must(t, os.Remove(merged+"/gone.txt"))
	must(t, os.RemoveAll(merged+"/gone-dir"))
	// A directory removed and made again is opaque in the upper.
	must(t, os.RemoveAll(merged+"/opq"))
	must(t, os.Mkdir(merged+"/opq", 0o750))
	writeFile(t, merged+"/opq/new", "new")
	writeFile(t, merged+"/added/deep/file", "added")
	must(t, os.Link(merged+"/added/deep/file", merged+"/added/link"))
	must(t, os.Symlink("../keep.txt", merged+"/added/sym"))
	if xattrsSupported(t, merged+"/etc") {
		must(t, unix.Lsetxattr(merged+"/etc/conf", "user.mime", []byte("text/plain"), 0))
	}
	want := describeTree(t, merged)
	unmount()

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	stats, err := FromOverlayUpper(context.Background(), upper, tw)
	must(t, err)
	must(t, tw.Close())
	entries := readLayer(t, &buf)
	got := names(entries)
	for _, w := range []string{".wh.gone.txt 0", ".wh.gone-dir 0", "opq 5\nopq/.wh..wh..opq 0\nopq/new 0", "added/link 1 -> added/deep/file"} {
		if !strings.Contains(got, w) {
			t.Errorf("layer lacks %q:\n%s", w, got)
		}
	}
	for _, e := range entries {
		for k := range e.hdr.PAXRecords {
			if strings.Contains(k, "overlay.") {
				t.Errorf("%s carries the overlay xattr %s", e.hdr.Name, k)
			}
		}
	}
	if stats.Deleted != 2 || stats.Entries != len(entries) {
		t.Errorf("stats = %+v", stats)
	}

	must(t, rootfs.Apply(context.Background(), replica, &buf))
	compareTrees(t, want, describeTree(t, replica))
}

// TestFromOverlayUpperRedirect refuses an upper that refers to lower
// directories by redirect xattrs instead of holding them.
func TestFromOverlayUpperRedirect(t *testing.T) {
	testutil.RequireRoot(t, "mounting overlayfs")
	dir := t.TempDir()
	lower, upper, work, merged := dir+"/lower", dir+"/upper", dir+"/work", dir+"/merged"
	for _, d := range []string{lower, upper, work, merged} {
		must(t, os.Mkdir(d, 0o755))
	}
	writeFile(t, lower+"/d/file", "f")
	opts := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work + ",redirect_dir=on"
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		t.Skipf("cannot mount overlayfs with redirect_dir here: %v", err)
	}
	err := os.Rename(merged+"/d", merged+"/renamed")
	must(t, unix.Unmount(merged, 0))
	must(t, err)
	_, err = FromOverlayUpper(context.Background(), upper, tar.NewWriter(&bytes.Buffer{}))
	if err == nil || !strings.Contains(err.Error(), "redirect") {
		t.Errorf("FromOverlayUpper = %v, want a redirect error", err)
	}
}

// TestFromOverlayUpperUserXattrs converts an upper written by a rootless
// overlay mount (userxattr): opaque directories marked with user.overlay.*.
func TestFromOverlayUpperUserXattrs(t *testing.T) {
	upper := t.TempDir()
	if !xattrsSupported(t, upper) {
		t.Skip("no user xattrs on the test filesystem")
	}
	writeFile(t, upper+"/opq/new", "n")
	must(t, unix.Lsetxattr(upper+"/opq", "user.overlay.opaque", []byte("y"), 0))
	must(t, unix.Lsetxattr(upper+"/opq", "user.keep", []byte("k"), 0))
	writeFile(t, upper+"/ignored/file", "i")
	writeFile(t, upper+"/.wh.not-a-whiteout", "a file of that name")
	want := "opq 5\nopq/.wh..wh..opq 0\nopq/new 0"
	if os.Geteuid() == 0 {
		must(t, unix.Mknod(upper+"/deleted", unix.S_IFCHR, 0))
		want = "deleted 0\n" + want // renamed to .wh.deleted below
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	_, err := FromOverlayUpper(context.Background(), upper, tw, WithIgnore(func(p string) bool { return p == "/ignored" }))
	must(t, err)
	must(t, tw.Close())
	entries := readLayer(t, &buf)
	if got := names(entries); got != strings.Replace(want, "deleted", ".wh.deleted", 1) {
		t.Errorf("layer:\n%s\nwant:\n%s", got, want)
	}
	for _, e := range entries {
		if e.hdr.Name == "opq" && (e.hdr.PAXRecords["SCHILY.xattr.user.keep"] != "k" || e.hdr.PAXRecords["SCHILY.xattr.user.overlay.opaque"] != "") {
			t.Errorf("opq xattrs: %v", e.hdr.PAXRecords)
		}
	}
}
