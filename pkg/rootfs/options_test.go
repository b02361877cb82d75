package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/pkg/rootfs/rootfstest"
	"golang.org/x/sys/unix"
)

// TestExtractArchiveOptions extracts the same entries as a layer and as a
// plain archive (a build context): owners, whiteouts and special files are
// what differs.
func TestExtractArchiveOptions(t *testing.T) {
	entries := []entry{
		fileEntry("keep", "k"),
		fileEntry("owned", "o").with(func(h *tar.Header) { h.Uid, h.Gid = 4242, 4343 }),
		whiteoutEntry(".wh.keep"),
		fileEntry("d/.wh..wh..opq", "literal"),
	}
	root := t.TempDir()
	apply(t, root, fileEntry("d/lower", "lower"))
	r, err := OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	err = r.Extract(context.Background(), layer(t, entries...), WithoutOwners(), WithLiteralWhiteouts(), WithoutSpecialFiles())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"keep", ".wh.keep", "d/lower", "d/.wh..wh..opq"} {
		if !exists(filepath.Join(root, p)) {
			t.Errorf("%s is missing: a whiteout was interpreted", p)
		}
	}
	if st := lstat(t, filepath.Join(root, "owned")); int(st.Uid) != os.Geteuid() || int(st.Gid) != os.Getegid() {
		t.Errorf("owned: owner %d:%d, want the extracting user's", st.Uid, st.Gid)
	}
	if m := lstat(t, filepath.Join(root, "owned")).Mode; m != unix.S_IFREG|0o644 {
		t.Errorf("owned: mode %o", m)
	}

	for _, e := range []entry{
		newEntry(tar.TypeFifo, "sub/fifo", 0o600),
		newEntry(tar.TypeChar, "sub/null", 0o666).with(func(h *tar.Header) { h.Devmajor, h.Devminor = 1, 3 }),
		newEntry(tar.TypeBlock, "sub/sda", 0o660).with(func(h *tar.Header) { h.Devmajor = 8 }),
	} {
		err := r.Extract(context.Background(), layer(t, e), WithoutSpecialFiles(), WithLayerName("ctx"))
		var xe *ExtractError
		if !errors.As(err, &xe) || !errors.Is(err, ErrSpecialFile) || xe.Header.Name != e.hdr.Name || xe.Layer != "ctx" {
			t.Errorf("%s: error %v, want an *ExtractError for it wrapping ErrSpecialFile", e.hdr.Name, err)
		}
		if exists(filepath.Join(root, "sub")) {
			t.Errorf("%s: its parent directory was created before it was refused", e.hdr.Name)
		}
	}
}

func TestExtractLayerOwnersKept(t *testing.T) {
	testutil.RequireRoot(t, "chown")
	root := t.TempDir()
	apply(t, root, fileEntry("owned", "o").with(func(h *tar.Header) { h.Uid, h.Gid = 4242, 4343 }))
	if st := lstat(t, filepath.Join(root, "owned")); st.Uid != 4242 || st.Gid != 4343 {
		t.Errorf("a layer lost its owners: %d:%d", st.Uid, st.Gid)
	}
}

// TestExtractErrorFields checks that callers can tell what went wrong
// without parsing messages.
func TestExtractErrorFields(t *testing.T) {
	root := t.TempDir()
	cases := []struct {
		entries []entry
		name    string
		link    bool
		is      error
		msg     string
	}{
		{[]entry{fileEntry("../x", "x")}, "../x", false, ErrPathEscapes, `layer L: entry "../x": path escapes the root`},
		{[]entry{hardlinkEntry("h", "../x")}, "h", true, ErrPathEscapes, `layer L: entry "h": hard link target "../x": path escapes the root`},
		{[]entry{hardlinkEntry("h", "missing")}, "h", true, os.ErrNotExist, `layer L: entry "h": hard link target "missing" does not exist`},
	}
	for _, c := range cases {
		err := Apply(context.Background(), root, layer(t, c.entries...), WithLayerName("L"))
		var xe *ExtractError
		if !errors.As(err, &xe) || xe.Header == nil || xe.Header.Name != c.name || xe.Link != c.link || !errors.Is(err, c.is) || err.Error() != c.msg {
			t.Errorf("%s: %v (%+v)", c.msg, err, xe)
		}
	}
	err := Apply(context.Background(), root, strings.NewReader(strings.Repeat("not a tar header ", 64)))
	var xe *ExtractError
	if !errors.As(err, &xe) || xe.Header != nil || !strings.HasPrefix(err.Error(), "reading tar: ") {
		t.Errorf("not a tar stream: %v", err)
	}
}

// WithHeaders sees every entry, in order, in the pass that extracts it, as
// copies the caller may keep.
func TestWithHeadersRecordsEveryEntry(t *testing.T) {
	root := t.TempDir()
	var seen []*tar.Header
	tarball := rootfstest.Tar("d etc\nf etc/passwd root\nl bin usr/bin\nf etc/.wh.gone\n", nil)
	if err := Apply(context.Background(), root, bytes.NewReader(tarball), WithChownErrorsIgnored(os.Geteuid() != 0),
		WithHeaders(func(h *tar.Header) { seen = append(seen, h) })); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, h := range seen {
		names = append(names, h.Name)
	}
	if got := strings.Join(names, " "); got != "etc etc/passwd bin etc/.wh.gone" {
		t.Errorf("recorded %q", got)
	}
	if data, err := os.ReadFile(filepath.Join(root, "etc/passwd")); err != nil || string(data) != "root" {
		t.Errorf("etc/passwd: %q, %v", data, err)
	}
}
