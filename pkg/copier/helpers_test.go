package copier

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/pkg/fsview"
)

var mtime = time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)

func file(data string, mode fs.FileMode) *fsview.MapFile {
	return &fsview.MapFile{Entry: fsview.Entry{Mode: mode, ModTime: mtime}, Data: []byte(data)}
}

func owned(f *fsview.MapFile, uid, gid int) *fsview.MapFile {
	f.UID, f.GID = uid, gid
	return f
}

func dir(mode fs.FileMode) *fsview.MapFile {
	return &fsview.MapFile{Entry: fsview.Entry{Mode: fs.ModeDir | mode, ModTime: mtime}}
}

func symlink(target string) *fsview.MapFile {
	return &fsview.MapFile{Entry: fsview.Entry{Mode: fs.ModeSymlink | 0o777, Linkname: target, ModTime: mtime}}
}

// hardlink returns a file of the hard-link group id.
func hardlink(data, id string) *fsview.MapFile {
	f := file(data, 0o644)
	f.Inode = id
	return f
}

// entry is one tar entry read back from a copy.
type entry struct {
	hdr  *tar.Header
	data string
}

// String is a compact description used in test failures and comparisons:
// "f etc/x 644 0:0 data", "d etc 755 0:0", "l bin/sh -> busybox", "h a => b".
func (e entry) String() string {
	h := e.hdr
	switch h.Typeflag {
	case tar.TypeDir:
		return fmt.Sprintf("d %s %o %d:%d", h.Name, h.Mode, h.Uid, h.Gid)
	case tar.TypeSymlink:
		return fmt.Sprintf("l %s -> %s %d:%d", h.Name, h.Linkname, h.Uid, h.Gid)
	case tar.TypeLink:
		return fmt.Sprintf("h %s => %s", h.Name, h.Linkname)
	case tar.TypeReg:
		return fmt.Sprintf("f %s %o %d:%d %s", h.Name, h.Mode, h.Uid, h.Gid, e.data)
	default:
		return fmt.Sprintf("%c %s %o %d:%d", h.Typeflag, h.Name, h.Mode, h.Uid, h.Gid)
	}
}

// copyTo runs Copy into an in-memory tar and reads it back.
func copyTo(t *testing.T, req *Request) (*Result, []entry, error) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	res, err := Copy(context.Background(), req, tw)
	if err != nil {
		return nil, nil, err
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	var out []entry
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, entry{hdr: h, data: string(b)})
	}
	return res, out, nil
}

// mustCopy is copyTo that fails the test on error and returns the entries'
// descriptions in layer order.
func mustCopy(t *testing.T, req *Request) []string {
	t.Helper()
	_, ents, err := copyTo(t, req)
	if err != nil {
		t.Fatalf("Copy(%v -> %q): %v", req.Sources, req.Dest, err)
	}
	return describe(ents)
}

func describe(ents []entry) []string {
	out := make([]string, len(ents))
	for i, e := range ents {
		out[i] = e.String()
	}
	return out
}

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}

func equal(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\ngot:\n  %s\nwant:\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// wantErr checks that err is an error whose message contains every part.
func wantErr(t *testing.T, what string, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error, want one containing %q", what, parts)
		return
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %q does not contain %q", what, err, p)
		}
	}
}
