package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// entry is a layer entry: a header and, for regular files, the content.
type entry struct {
	hdr  tar.Header
	body string
}

// The builders below make entries owned by the user running the test (so
// that the tests not about ownership also run without root), with mtime
// epoch; tests adjust the headers they care about.
func newEntry(typ byte, name string, mode int64) entry {
	return entry{hdr: tar.Header{Typeflag: typ, Name: name, Mode: mode, ModTime: epoch, Uid: os.Getuid(), Gid: os.Getgid()}}
}

func dirEntry(name string, mode int64) entry { return newEntry(tar.TypeDir, name, mode) }

func fileEntry(name, body string) entry {
	e := newEntry(tar.TypeReg, name, 0o644)
	e.hdr.Size, e.body = int64(len(body)), body
	return e
}

func symlinkEntry(name, target string) entry {
	e := newEntry(tar.TypeSymlink, name, 0o777)
	e.hdr.Linkname = target
	return e
}

func hardlinkEntry(name, target string) entry {
	e := newEntry(tar.TypeLink, name, 0)
	e.hdr.Linkname = target
	return e
}

func whiteoutEntry(name string) entry { return newEntry(tar.TypeReg, name, 0o644) }

// with returns e after f changed its header.
func (e entry) with(f func(h *tar.Header)) entry {
	f(&e.hdr)
	return e
}

// layer serialises entries into a tar stream.
func layer(t testing.TB, entries ...entry) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("writing %q: %v", h.Name, err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

func apply(t testing.TB, root string, entries ...entry) {
	t.Helper()
	if err := Apply(context.Background(), root, layer(t, entries...)); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func lstat(t testing.TB, p string) *unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return !errors.Is(err, os.ErrNotExist)
}

// describeTree lists every entry below dir with its type, mode, size,
// content, link target and link count, one line each, for before/after
// comparisons of directories an extraction must not touch.
func describeTree(t testing.TB, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t) //nolint:forcetypeassert // Linux only
		rel, _ := filepath.Rel(dir, p)
		b.WriteString(rel + " " + fi.Mode().String() + " " + fi.ModTime().String())
		switch {
		case fi.Mode().IsRegular():
			c, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b.WriteString(" " + string(c))
		case fi.Mode()&os.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			b.WriteString(" -> " + l)
		}
		b.WriteString(" nlink=" + strconv.Itoa(int(st.Nlink)) + "\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
