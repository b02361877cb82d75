package fsview_test

import (
	"archive/tar"
	"errors"
	"io"
	"io/fs"
	"sort"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/pkg/fsview"
	"github.com/kiln-build/kiln/pkg/layer"
)

// ent is a compact way to write tar entries: "d name", "f name content",
// "l name target" (symlink), "h name target" (hard link).
func mkLayer(t *testing.T, ents ...string) v1.Layer {
	t.Helper()
	w, err := layer.NewWriter(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		parts := strings.SplitN(e, " ", 3)
		h := &tar.Header{Name: parts[1], Mode: 0o644}
		body := ""
		switch parts[0] {
		case "d":
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		case "f":
			h.Typeflag = tar.TypeReg
			if len(parts) == 3 {
				body = parts[2]
			}
			h.Size = int64(len(body))
		case "l":
			h.Typeflag, h.Linkname = tar.TypeSymlink, parts[2]
		case "h":
			h.Typeflag, h.Linkname = tar.TypeLink, parts[2]
		}
		if err := w.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, body); err != nil {
			t.Fatal(err)
		}
	}
	l, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func listing(t *testing.T, fsys fsview.FS, dir string) []string {
	t.Helper()
	var out []string
	var walk func(string)
	walk = func(d string) {
		ents, err := fsys.ReadDir(d)
		if err != nil {
			t.Fatalf("ReadDir(%q): %v", d, err)
		}
		for _, e := range ents {
			kind := "f"
			switch {
			case e.IsDir():
				kind = "d"
			case e.IsSymlink():
				kind = "l"
			}
			out = append(out, kind+" "+e.Path)
			if e.IsDir() {
				walk(e.Path)
			}
		}
	}
	walk(dir)
	sort.Strings(out)
	return out
}

func read(t *testing.T, fsys fsview.FS, p string) string {
	t.Helper()
	rc, err := fsys.Open(p)
	if err != nil {
		t.Fatalf("Open(%q): %v", p, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The same shape as the harness's whiteout-test image.
func TestLayerFSWhiteouts(t *testing.T) {
	l1 := mkLayer(t,
		"d wt", "f wt/keep.txt keep", "f wt/gone.txt gone",
		"d wt/gone-dir", "d wt/gone-dir/sub", "f wt/gone-dir/sub/b.txt b",
		"d wt/opq", "d wt/opq/olddir", "f wt/opq/olddir/old2.txt old2", "f wt/opq/old1.txt old1",
		"f wt/replace-file-with-dir file", "d wt/replace-dir-with-file", "f wt/replace-dir-with-file/x.txt x",
		"l wt/link-to-keep keep.txt", "f wt/hard1 hard", "h wt/hard2 wt/hard1", "d wt/emptydir")
	l2 := mkLayer(t,
		"f wt/.wh.gone.txt", "f wt/.wh.gone-dir", "f wt/.wh.hard1",
		"d wt/opq", "f wt/opq/new.txt new", "f wt/opq/.wh..wh..opq",
		"d wt/replace-file-with-dir", "f wt/replace-file-with-dir/inner.txt inner",
		"f wt/replace-dir-with-file now a file", "f wt/new.txt added")
	fsys := fsview.NewLayerFS([]v1.Layer{l1, l2}, fsview.WithSpoolDir(t.TempDir()))
	defer fsys.Close()

	want := []string{
		"d /wt/emptydir", "d /wt/opq", "d /wt/replace-file-with-dir",
		"f /wt/hard2", "f /wt/keep.txt", "f /wt/new.txt", "f /wt/opq/new.txt",
		"f /wt/replace-dir-with-file", "f /wt/replace-file-with-dir/inner.txt",
		"l /wt/link-to-keep",
	}
	got := listing(t, fsys, "/wt")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("flattened /wt:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// hard2 survives its whited-out partner with the content of the link's inode.
	if s := read(t, fsys, "/wt/hard2"); s != "hard" {
		t.Errorf("hard2 = %q, want %q", s, "hard")
	}
	// Reads through a symlink, from both layers, several times (the second
	// read from a layer goes through the spool).
	for i := 0; i < 2; i++ {
		if s := read(t, fsys, "/wt/link-to-keep"); s != "keep" {
			t.Errorf("link-to-keep = %q", s)
		}
		if s := read(t, fsys, "/wt/replace-dir-with-file"); s != "now a file" {
			t.Errorf("replace-dir-with-file = %q", s)
		}
		if s := read(t, fsys, "/wt/opq/new.txt"); s != "new" {
			t.Errorf("opq/new.txt = %q", s)
		}
	}
	if _, err := fsys.Lstat("/wt/gone.txt"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("whited-out file: %v", err)
	}
}

func TestLayerFSCloneIsIndependent(t *testing.T) {
	base := fsview.NewLayerFS([]v1.Layer{mkLayer(t, "d etc", "f etc/passwd root:x:0:0::/root:/bin/sh")})
	a := base.Clone()
	a.Append(mkLayer(t, "f a.txt a"))
	b := base.Clone()
	b.Append(mkLayer(t, "f b.txt b"))
	if _, err := a.Lstat("/b.txt"); err == nil {
		t.Fatal("a sees b's layer")
	}
	if _, err := b.Lstat("/a.txt"); err == nil {
		t.Fatal("b sees a's layer")
	}
	if s := read(t, b, "/etc/passwd"); !strings.HasPrefix(s, "root:") {
		t.Fatalf("passwd = %q", s)
	}
}

func TestLayerFSOpaqueHidesLowerSubtreeOnly(t *testing.T) {
	l1 := mkLayer(t, "d d", "d d/sub", "f d/sub/old old")
	// In the same layer, new content before the opaque marker is kept.
	l2 := mkLayer(t, "d d", "d d/sub", "f d/sub/new new", "f d/.wh..wh..opq")
	fsys := fsview.NewLayerFS([]v1.Layer{l1, l2})
	got := listing(t, fsys, "/d")
	want := "d /d/sub\nf /d/sub/new"
	if strings.Join(got, "\n") != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
