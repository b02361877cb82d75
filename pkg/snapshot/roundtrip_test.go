package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/pkg/rootfs"
)

// TestRoundTrip checks the layers Diff writes against the trees they
// describe: a "before" tree is extracted twice, random changes are made to
// one copy, and applying the layer to the other copy must make the two
// identical (content, types, modes, owners, mtimes, xattrs, hard links).
// Several rounds run on the same trees, so each Diff starts from the
// previous one's state.
func TestRoundTrip(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, 0x6b696c6e))
			work, replica := t.TempDir(), t.TempDir()
			xattrs := xattrsSupported(t, work)
			base := baseLayer(t, rng, xattrs)
			for _, root := range []string{work, replica} {
				must(t, rootfs.Apply(context.Background(), root, bytes.NewReader(base)))
			}
			compareTrees(t, describeTree(t, work), describeTree(t, replica))

			s := New(work)
			baseline(t, s)
			m := &mutator{t: t, rng: rng, root: work, xattrs: xattrs}
			for round := range 3 {
				m.log = nil
				for range 60 {
					m.step()
				}
				layer, _ := diff(t, s)
				if err := rootfs.Apply(context.Background(), replica, layer); err != nil {
					t.Fatalf("round %d: applying the layer: %v\nops:\n%s", round, err, strings.Join(m.log, "\n"))
				}
				compareTrees(t, describeTree(t, work), describeTree(t, replica))
				if t.Failed() {
					t.Fatalf("round %d, ops:\n%s\nlayer:\n%s", round, strings.Join(m.log, "\n"), names(readLayer(t, layer)))
				}
			}
			if layer, _ := diff(t, s); layer.Len() != 1024 {
				t.Errorf("a Diff without changes wrote %s", names(readLayer(t, layer)))
			}
		})
	}
}

// baseLayer makes a layer with directories, files, symlinks, hard links,
// fifos and (when supported) xattrs, with owners other than root when the
// test runs as root.
func baseLayer(t *testing.T, rng *rand.Rand, xattrs bool) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	when := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	dirs := []string{""}
	var files []string
	write := func(h *tar.Header, body string) {
		h.ModTime = when.Add(time.Duration(rng.IntN(1e6)) * time.Second)
		h.Format = tar.FormatPAX
		h.Uid, h.Gid = os.Getuid(), os.Getgid()
		if os.Geteuid() == 0 {
			h.Uid, h.Gid = rng.IntN(3)*1000, rng.IntN(3)*1000
		}
		if xattrs && (h.Typeflag == tar.TypeReg || h.Typeflag == tar.TypeDir) && rng.IntN(4) == 0 {
			h.PAXRecords = map[string]string{"SCHILY.xattr.user.origin": fmt.Sprint(rng.IntN(100))}
		}
		must(t, tw.WriteHeader(h))
		_, err := tw.Write([]byte(body))
		must(t, err)
	}
	for i := range 120 {
		parent := dirs[rng.IntN(len(dirs))]
		name := strings.TrimPrefix(fmt.Sprintf("%s/n%d", parent, i), "/")
		switch k := rng.IntN(10); {
		case k < 3 && strings.Count(name, "/") < 4:
			write(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755}, "")
			dirs = append(dirs, name)
		case k < 7:
			body := strings.Repeat(fmt.Sprint(i), rng.IntN(200))
			write(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body))}, body)
			files = append(files, name)
		case k == 7 && len(files) > 0:
			write(&tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: files[rng.IntN(len(files))]}, "")
		case k == 8:
			write(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: fmt.Sprintf("../n%d", rng.IntN(120)), Mode: 0o777}, "")
		default:
			write(&tar.Header{Typeflag: tar.TypeFifo, Name: name, Mode: 0o600}, "")
		}
	}
	must(t, tw.Close())
	return buf.Bytes()
}

// mutator makes random changes of every kind a RUN can make.
type mutator struct {
	t      *testing.T
	rng    *rand.Rand
	root   string
	xattrs bool
	n      int
	log    []string
}

// listing holds the paths (relative to the root) below the root by type.
type listing map[uint32][]string

func (m *mutator) list() listing {
	ls := listing{}
	must(m.t, filepath.Walk(m.root, func(p string, _ os.FileInfo, err error) error {
		if err != nil || p == m.root {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		ty := st.Mode & unix.S_IFMT
		ls[ty] = append(ls[ty], strings.TrimPrefix(p, m.root+"/"))
		return nil
	}))
	return ls
}

// pick returns a random path of one of the given types, or "" when there
// is none.
func (m *mutator) pick(ls listing, types ...uint32) string {
	var candidates []string
	for _, ty := range types {
		candidates = append(candidates, ls[ty]...)
	}
	if len(candidates) == 0 {
		return ""
	}
	return candidates[m.rng.IntN(len(candidates))]
}

// newName returns a path that does not exist yet, in a random directory.
func (m *mutator) newName(ls listing) string {
	m.n++
	dir := ""
	if m.rng.IntN(3) > 0 {
		dir = m.pick(ls, unix.S_IFDIR)
	}
	return filepath.Join(dir, fmt.Sprintf("new%d", m.n))
}

func (m *mutator) abs(rel string) string { return filepath.Join(m.root, rel) }

func (m *mutator) step() {
	t, rng := m.t, m.rng
	ls := m.list()
	file, dir := m.pick(ls, unix.S_IFREG), m.pick(ls, unix.S_IFDIR)
	entry := m.pick(ls, unix.S_IFREG, unix.S_IFDIR, unix.S_IFLNK, unix.S_IFIFO)
	op := rng.IntN(16)
	record := func(format string, args ...any) { m.log = append(m.log, fmt.Sprintf(format, args...)) }
	switch {
	case op == 0 || file == "" && op < 6:
		p := m.newName(ls)
		record("create %s", p)
		must(t, os.WriteFile(m.abs(p), []byte(fmt.Sprint("created ", m.n)), 0o640))
	case op == 1:
		record("rewrite %s", file)
		must(t, os.WriteFile(m.abs(file), []byte(fmt.Sprint("rewritten ", rng.Int())), 0o644))
	case op == 2:
		// Same size, mtime restored: only ctime shows it.
		st, err := os.Stat(m.abs(file))
		must(t, err)
		record("rewrite in place keeping mtime %s", file)
		f, err := os.OpenFile(m.abs(file), os.O_WRONLY, 0)
		must(t, err)
		if st.Size() > 0 {
			_, err = f.WriteAt([]byte{byte('A' + rng.IntN(26))}, rng.Int64N(st.Size()))
			must(t, err)
		}
		must(t, f.Close())
		must(t, os.Chtimes(m.abs(file), st.ModTime(), st.ModTime()))
	case op == 3:
		modes := []os.FileMode{0o600, 0o644, 0o755, 0o700 | os.ModeSetuid, 0o755 | os.ModeSetgid, 0o777 | os.ModeSticky}
		target := file
		if rng.IntN(2) == 0 && dir != "" {
			target = dir
		}
		mode := modes[rng.IntN(len(modes))]
		if target == dir {
			mode |= 0o700 // the test itself must still be able to use it
		}
		record("chmod %o %s", mode, target)
		must(t, os.Chmod(m.abs(target), mode))
	case op == 4 && os.Geteuid() == 0 && entry != "":
		uid, gid := rng.IntN(3)*1000, rng.IntN(3)*1000
		record("chown %d:%d %s", uid, gid, entry)
		must(t, os.Lchown(m.abs(entry), uid, gid))
	case op == 5 && entry != "":
		record("remove %s", entry)
		must(t, os.RemoveAll(m.abs(entry)))
	case op == 6 && entry != "":
		to := m.newName(ls)
		if strings.HasPrefix(to+"/", entry+"/") {
			return // into itself
		}
		record("rename %s %s", entry, to)
		must(t, os.Rename(m.abs(entry), m.abs(to)))
	case op == 7:
		record("replace file %s by a directory", file)
		must(t, os.Remove(m.abs(file)))
		must(t, os.Mkdir(m.abs(file), 0o750))
		must(t, os.WriteFile(m.abs(file+"/inside"), []byte("inside"), 0o644))
	case op == 8 && dir != "":
		record("replace directory %s by a file", dir)
		must(t, os.RemoveAll(m.abs(dir)))
		must(t, os.WriteFile(m.abs(dir), []byte("was a directory"), 0o644))
	case op == 9:
		p, target := m.newName(ls), fmt.Sprintf("../target%d", rng.IntN(10))
		if link := m.pick(ls, unix.S_IFLNK); link != "" && rng.IntN(2) == 0 {
			p = link
			must(t, os.Remove(m.abs(p)))
		}
		record("symlink %s -> %s", p, target)
		must(t, os.Symlink(target, m.abs(p)))
	case op == 10:
		p := m.newName(ls)
		record("hard link %s to %s", p, file)
		must(t, os.Link(m.abs(file), m.abs(p)))
	case op == 11 && m.xattrs:
		target := file
		if rng.IntN(2) == 0 && dir != "" {
			target = dir
		}
		if rng.IntN(3) == 0 {
			record("remove xattr of %s", target)
			if err := unix.Lremovexattr(m.abs(target), "user.origin"); err != nil && err != unix.ENODATA {
				t.Fatal(err)
			}
		} else {
			v := fmt.Sprint(rng.IntN(1000))
			record("set xattr of %s to %s", target, v)
			must(t, unix.Lsetxattr(m.abs(target), "user.origin", []byte(v), 0))
		}
	case op == 12:
		p := m.newName(ls)
		record("mkfifo %s", p)
		must(t, unix.Mkfifo(m.abs(p), 0o644))
	case op == 13:
		p := m.newName(ls)
		record("mkdir %s with content", p)
		must(t, os.MkdirAll(m.abs(p+"/sub"), 0o755))
		must(t, os.WriteFile(m.abs(p+"/sub/file"), []byte("deep"), 0o600))
	case op == 14 && dir != "":
		when := time.Unix(rng.Int64N(2e9), 0)
		record("touch directory %s at %v", dir, when)
		must(t, os.Chtimes(m.abs(dir), when, when))
	case op == 15 && os.Geteuid() == 0:
		p := m.newName(ls)
		record("mknod %s", p)
		must(t, unix.Mknod(m.abs(p), unix.S_IFCHR|0o600, int(unix.Mkdev(1, uint32(rng.IntN(9))))))
	}
}
