package sandbox

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// In in-place isolation a RUN command runs as root in kiln's own container,
// with CAP_DAC_OVERRIDE: no file permission keeps it from kiln's files, and
// making them read-only needs a mount, which kiln may not make there. What
// kiln can do is notice and undo: it records its own files before the first
// RUN, checks them after every RUN, puts back what a RUN changed (and fails
// the build), and refuses to start when its binaries differ from the kiln
// that is running, which an earlier build's RUN could have caused.

// kilnBinaries are where kiln's executor images keep kiln's binary (or
// links to it).
var kilnBinaries = []string{"/kiln/executor", "/kiln/kiln", "/kaniko/executor"}

// ownFileRoots are kiln's own files in its executor images: the binaries,
// the CA certificates and docker config directories kiln trusts, and the
// debug image's shell, which CI systems run their next steps with. Mount
// points below them (a docker config secret) are the container runtime's,
// not the image's: they are left out.
var ownFileRoots = []string{
	"/kiln/executor", "/kiln/kiln", "/kiln/ssl", "/kiln/.docker",
	"/kaniko/executor", "/kaniko/ssl", "/kaniko/.docker",
	"/busybox",
}

// maxKeptFile is the size up to which a file's content is kept in memory to
// be put back; kiln's binary is put back from /proc/self/exe instead.
const maxKeptFile = 8 << 20

// ownEntry is what was recorded of one path.
type ownEntry struct {
	mode     fs.FileMode
	uid, gid uint32
	// ident is the inode's identity and times: unchanged means the path
	// was not touched (a write or chmod changes the ctime, which no
	// system call can set back).
	ident fileIdent
	// Regular files: the content's hash, and the content when small.
	hash    [sha256.Size]byte
	content []byte
	// isSelf says the content is the running kiln's.
	isSelf bool
	// opaque says kiln could not read the file: no hash, no content.
	opaque bool
	// Symbolic links: the target.
	target string
}

type fileIdent struct {
	dev, ino     uint64
	size         int64
	mtime, ctime syscall.Timespec
	nlink        uint64
}

// ownFiles is the record of kiln's own files.
type ownFiles struct {
	selfHash [sha256.Size]byte
	entries  map[string]*ownEntry
	// dirs are the recorded directories, whose new entries a RUN added.
	dirs []string
	// skip reports paths that are not kiln's (mount points and below).
	skip func(string) bool
}

// recordOwnFiles records the files under roots that exist. mounts are the
// mount points of kiln's mount namespace.
func recordOwnFiles(roots, mounts []string) (*ownFiles, error) {
	self, err := hashFile("/proc/self/exe")
	if err != nil {
		return nil, fmt.Errorf("reading kiln's own executable: %w", err)
	}
	o := &ownFiles{selfHash: self, entries: map[string]*ownEntry{}}
	o.skip = func(p string) bool {
		for _, m := range mounts {
			if m != "/" && (p == m || strings.HasPrefix(p, m+"/")) {
				return true
			}
		}
		return false
	}
	for _, root := range roots {
		if o.skip(root) {
			continue
		}
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) && p == root {
				return nil
			}
			if err != nil && d != nil && d.IsDir() && errors.Is(err, fs.ErrPermission) {
				return filepath.SkipDir // recorded, not its entries: kiln may not list them
			}
			if err != nil {
				return err
			}
			if o.skip(p) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			e, err := o.record(p)
			if err != nil {
				return err
			}
			o.entries[p] = e
			if e.mode.IsDir() {
				o.dirs = append(o.dirs, p)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("recording kiln's own files: %w", err)
		}
	}
	return o, nil
}

func (o *ownFiles) record(p string) (*ownEntry, error) {
	st, err := lstatIdent(p)
	if err != nil {
		return nil, err
	}
	e := &ownEntry{mode: st.mode, uid: st.uid, gid: st.gid, ident: st.ident}
	switch {
	case e.mode.Type() == fs.ModeSymlink:
		if e.target, err = os.Readlink(p); err != nil {
			return nil, err
		}
	case e.mode.IsRegular():
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrPermission) {
			// Not kiln's to read (kiln runs as another user): only its
			// inode is watched, and a change cannot be put back.
			e.opaque = true
			return e, nil
		}
		if err != nil {
			return nil, err
		}
		defer f.Close()
		h := sha256.New()
		var kept bytes.Buffer
		w := io.Writer(h)
		if e.ident.size <= maxKeptFile {
			w = io.MultiWriter(h, &kept)
		}
		if _, err := io.Copy(w, f); err != nil {
			return nil, err
		}
		copy(e.hash[:], h.Sum(nil))
		e.isSelf = e.hash == o.selfHash
		if !e.isSelf && e.ident.size <= maxKeptFile {
			e.content = kept.Bytes()
		}
	}
	return e, nil
}

type statResult struct {
	mode     fs.FileMode
	uid, gid uint32
	ident    fileIdent
}

func lstatIdent(p string) (statResult, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return statResult{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return statResult{}, fmt.Errorf("lstat %q: no inode information", p)
	}
	return statResult{
		mode: fi.Mode(), uid: st.Uid, gid: st.Gid,
		ident: fileIdent{dev: st.Dev, ino: st.Ino, size: st.Size, mtime: st.Mtim, ctime: st.Ctim, nlink: uint64(st.Nlink)},
	}, nil
}

// check compares the files with the record and puts back what changed. It
// returns what it found changed, and an error if something could not be
// put back.
func (o *ownFiles) check() (changed []string, err error) {
	var errs []error
	paths := make([]string, 0, len(o.entries))
	for p := range o.entries {
		paths = append(paths, p)
	}
	// Parents before children: a directory is put back before its files.
	slices.Sort(paths)
	for _, p := range paths {
		e := o.entries[p]
		same, err := o.unchanged(p, e)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if same {
			continue
		}
		changed = append(changed, p)
		if err := o.restore(p, e); err != nil {
			errs = append(errs, fmt.Errorf("putting back %q: %w", p, err))
		}
	}
	// Entries a RUN added to kiln's directories.
	for _, dir := range o.dirs {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue // reported above if the directory could not be put back
		}
		for _, d := range ents {
			p := filepath.Join(dir, d.Name())
			if _, known := o.entries[p]; known || o.skip(p) {
				continue
			}
			changed = append(changed, p)
			if err := os.RemoveAll(p); err != nil {
				errs = append(errs, fmt.Errorf("removing %q: %w", p, err))
			}
		}
	}
	slices.Sort(changed)
	return changed, errors.Join(errs...)
}

// unchanged reports whether p is as recorded, updating the record's inode
// identity when only that changed (a file rewritten with the same content).
func (o *ownFiles) unchanged(p string, e *ownEntry) (bool, error) {
	st, err := lstatIdent(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if st.ident == e.ident {
		return true, nil
	}
	if st.mode != e.mode || st.uid != e.uid || st.gid != e.gid {
		return false, nil
	}
	switch {
	case e.mode.Type() == fs.ModeSymlink:
		target, err := os.Readlink(p)
		if err != nil || target != e.target {
			return false, nil
		}
	case e.opaque:
		return false, nil
	case e.mode.IsRegular():
		h, err := hashFile(p)
		if err != nil || h != e.hash {
			return false, nil
		}
	}
	e.ident = st.ident
	return true, nil
}

// restore puts p back as recorded: the new entry is made beside it and
// renamed over it, so that p is never missing or half-written.
func (o *ownFiles) restore(p string, e *ownEntry) error {
	dir, base := filepath.Split(p)
	tmp := filepath.Join(dir, ".kiln-restore-"+base)
	os.RemoveAll(tmp)
	var err error
	switch {
	case e.mode.IsDir():
		if st, serr := os.Lstat(p); serr == nil && !st.IsDir() {
			if err := os.Remove(p); err != nil {
				return err
			}
		}
		if err := os.Mkdir(p, e.mode.Perm()); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		tmp = p
	case e.mode.Type() == fs.ModeSymlink:
		err = os.Symlink(e.target, tmp)
	case e.mode.IsRegular():
		err = o.writeContent(tmp, e)
	default:
		return fmt.Errorf("cannot put back a %s", e.mode.Type())
	}
	if err == nil {
		err = os.Lchown(tmp, int(e.uid), int(e.gid))
	}
	if err == nil && e.mode.Type() != fs.ModeSymlink {
		// After the chown, which clears set-user-ID bits.
		err = os.Chmod(tmp, e.mode.Perm()|e.mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
	}
	if err == nil && tmp != p {
		if st, serr := os.Lstat(p); serr == nil && st.IsDir() {
			// A directory in the way of a file: rename cannot replace it.
			err = os.RemoveAll(p)
		}
		if err == nil {
			err = os.Rename(tmp, p)
		}
	}
	if err != nil {
		if tmp != p {
			os.RemoveAll(tmp)
		}
		return err
	}
	st, err := lstatIdent(p)
	if err != nil {
		return err
	}
	e.ident = st.ident
	return nil
}

// writeContent writes the recorded content of e to the new file tmp.
func (o *ownFiles) writeContent(tmp string, e *ownEntry) error {
	var src io.Reader
	switch {
	case e.isSelf:
		f, err := os.Open("/proc/self/exe")
		if err != nil {
			return err
		}
		defer f.Close()
		src = f
	case e.content != nil:
		src = bytes.NewReader(e.content)
	default:
		return fmt.Errorf("its content (%d bytes) was not kept", e.ident.size)
	}
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, h), src)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && !bytes.Equal(h.Sum(nil), e.hash[:]) {
		err = errors.New("the content written back does not match the record")
	}
	return err
}

func hashFile(p string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	f, err := os.Open(p)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, err
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// checkKilnBinaries refuses to go on when kiln runs as one of binaries (its
// executor image's kiln, exe being the running executable's path) and one
// of them is not the kiln that runs: an earlier build's RUN replaced it. A
// replaced binary that is the one started cannot catch itself: that is why
// kiln's files are also checked after every RUN.
func checkKilnBinaries(exe string, binaries []string, self [sha256.Size]byte) error {
	mine := false
	for _, b := range binaries {
		if real, err := filepath.EvalSymlinks(b); err == nil && real == exe {
			mine = true
		}
	}
	if !mine {
		return nil // a kiln started from elsewhere (a test, a developer's build)
	}
	for _, p := range binaries {
		h, err := hashFile(p) // following links: /kiln/kiln -> executor
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("checking kiln's own binary %q: %w", p, err)
		}
		if h != self {
			return fmt.Errorf("kiln's own binary %q is not the kiln that is running (%q): a RUN step of an earlier build in this "+
				"container must have replaced it; refusing to build in this container: start a new one", p, exe)
		}
	}
	return nil
}
