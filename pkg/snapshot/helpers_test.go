package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/pkg/fsview"
)

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(t testing.TB, p, content string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, []byte(content), 0o644))
}

func baseline(t testing.TB, s *Snapshotter) {
	t.Helper()
	must(t, s.Baseline(context.Background()))
}

// diff runs Diff into an in-memory tar.
func diff(t testing.TB, s *Snapshotter) (*bytes.Buffer, Stats) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	stats, err := s.Diff(context.Background(), tw)
	must(t, err)
	must(t, tw.Close())
	return &buf, stats
}

// layerEntry is what the tests check of a tar entry.
type layerEntry struct {
	hdr  *tar.Header
	body string
}

func readLayer(t testing.TB, layer *bytes.Buffer) []layerEntry {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(layer.Bytes()))
	var out []layerEntry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		must(t, err)
		b, err := io.ReadAll(tr)
		must(t, err)
		out = append(out, layerEntry{hdr: h, body: string(b)})
	}
}

// names lists the entries as "name type" lines, "name -> target" for links.
func names(entries []layerEntry) string {
	var lines []string
	for _, e := range entries {
		line := e.hdr.Name + " " + string(e.hdr.Typeflag)
		if e.hdr.Typeflag == tar.TypeLink {
			line += " -> " + e.hdr.Linkname
		}
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n")
}

// describeTree describes every entry below root (not root itself) with
// everything a layer carries: type and mode, owner, mtime, size and content
// of files, link targets, device numbers, xattrs, and which names share an
// inode. Directory sizes and link counts are left out: they follow from
// the directory's history and its subdirectories, and overlayfs reports
// link counts of its own.
func describeTree(t testing.TB, root string) map[string]string {
	t.Helper()
	type info struct {
		line string
		ino  uint64
		reg  bool
	}
	infos := map[string]info{}
	err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil || p == root {
			return err
		}
		rel := strings.TrimPrefix(p, root)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		line := fmt.Sprintf("mode=%o owner=%d:%d mtime=%d", st.Mode, st.Uid, st.Gid, st.Mtim.Nano())
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			line += fmt.Sprintf(" nlink=%d", st.Nlink)
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" size=%d sha=%x", st.Size, sha256.Sum256(b))
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			line += " -> " + target
		case unix.S_IFCHR, unix.S_IFBLK:
			line += fmt.Sprintf(" rdev=%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		x, err := fsview.ReadXattrs(p)
		if err != nil {
			return err
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			line += fmt.Sprintf(" %s=%q", k, x[k])
		}
		infos[rel] = info{line: line, ino: st.Ino, reg: st.Mode&unix.S_IFMT == unix.S_IFREG && st.Nlink > 1}
		return nil
	})
	must(t, err)
	// Name hard-link groups by their first path, so that two trees with
	// the same link structure describe alike.
	first := map[uint64]string{}
	paths := make([]string, 0, len(infos))
	for p := range infos {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	out := map[string]string{}
	for _, p := range paths {
		in := infos[p]
		if in.reg {
			if _, ok := first[in.ino]; !ok {
				first[in.ino] = p
			}
			in.line += " links-with=" + first[in.ino]
		}
		out[p] = in.line
	}
	return out
}

// compareTrees reports every path whose description differs.
func compareTrees(t testing.TB, want, got map[string]string) {
	t.Helper()
	var diffs []string
	for p, w := range want {
		if g, ok := got[p]; !ok {
			diffs = append(diffs, "missing "+p+": "+w)
		} else if g != w {
			diffs = append(diffs, fmt.Sprintf("differs %s:\n  want %s\n  got  %s", p, w, g))
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok {
			diffs = append(diffs, "extra "+p+": "+g)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Errorf("trees differ:\n%s", strings.Join(diffs, "\n"))
	}
}

func xattrsSupported(t testing.TB, dir string) bool {
	t.Helper()
	err := unix.Lsetxattr(dir, "user.probe", []byte("1"), 0)
	if err != nil {
		return false
	}
	must(t, unix.Lremovexattr(dir, "user.probe"))
	return true
}
