package fsview

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// DirFS is a root filesystem stored in a directory on disk.
//
// Paths are resolved in userspace with chroot semantics (Resolve), so a
// symlink never leads outside the directory; the resolved paths are then
// used relative to a handle on the root directory without following links.
type DirFS struct {
	root string
}

// NewDirFS returns the FS rooted at dir.
func NewDirFS(dir string) (*DirFS, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%q is not a directory", dir)
	}
	return &DirFS{root: path.Clean(dir)}, nil
}

// Root returns the directory on disk.
func (d *DirFS) Root() string { return d.root }

// HostPath returns where the resolved container path p lives on disk.
func (d *DirFS) HostPath(p string) string {
	return path.Join(d.root, Clean(p))
}

// raw describes an already-resolved path.
func (d *DirFS) raw(name string) (*Entry, error) {
	name = Clean(name)
	var st unix.Stat_t
	if err := unix.Lstat(d.HostPath(name), &st); err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: name, Err: err}
	}
	return d.entry(name, &st)
}

func (d *DirFS) entry(name string, st *unix.Stat_t) (*Entry, error) {
	e := &Entry{
		Path:    name,
		Mode:    ModeFromUnix(st.Mode),
		UID:     int(st.Uid),
		GID:     int(st.Gid),
		ModTime: time.Unix(st.Mtim.Unix()),
	}
	host := d.HostPath(name)
	switch {
	case e.IsRegular():
		e.Size = st.Size
		if st.Nlink > 1 {
			e.Inode = fmt.Sprintf("%d:%d", st.Dev, st.Ino)
		}
	case e.IsSymlink():
		target, err := os.Readlink(host)
		if err != nil {
			return nil, err
		}
		e.Linkname = target
	case e.Mode&fs.ModeDevice != 0:
		e.Devmajor = int64(unix.Major(st.Rdev))
		e.Devminor = int64(unix.Minor(st.Rdev))
	}
	if !e.IsSymlink() {
		x, err := ReadXattrs(host)
		if err != nil {
			return nil, err
		}
		e.Xattrs = x
	}
	return e, nil
}

// Lstat implements FS.
func (d *DirFS) Lstat(name string) (*Entry, error) {
	p, err := ResolveParent(LstatFunc(d.raw), name)
	if err != nil {
		return nil, err
	}
	return d.raw(p)
}

// ReadDir implements FS.
func (d *DirFS) ReadDir(name string) ([]*Entry, error) {
	dir, err := Resolve(LstatFunc(d.raw), name, true)
	if err != nil {
		return nil, err
	}
	f, err := d.openNoFollow(dir, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	sort.Strings(names)
	out := make([]*Entry, 0, len(names))
	for _, n := range names {
		e, err := d.raw(path.Join(dir, n))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed while listing
			}
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// Open implements FS. Only a regular file is opened: a named pipe would
// block the reader until some process writes to it, and a device could be
// read forever; both fail at once with ErrNotRegular.
func (d *DirFS) Open(name string) (io.ReadCloser, error) {
	p, err := Resolve(LstatFunc(d.raw), name, true)
	if err != nil {
		return nil, err
	}
	f, err := d.openNoFollow(p, unix.O_RDONLY|unix.O_NONBLOCK)
	if err == nil {
		err = blockingRegular(f)
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return f, nil
}

// ErrNotRegular is the error Open returns for what is not a regular file.
var ErrNotRegular = errors.New("not a regular file")

// blockingRegular checks that f, opened with O_NONBLOCK so that opening a
// named pipe does not wait, is a regular file, then puts it back in
// blocking mode. f is closed when it is not.
func blockingRegular(f *os.File) error {
	var st unix.Stat_t
	err := unix.Fstat(int(f.Fd()), &st)
	if err == nil && st.Mode&unix.S_IFMT != unix.S_IFREG {
		err = fmt.Errorf("%w: it is %s", ErrNotRegular, kindOf(st.Mode))
	}
	if err == nil {
		var fl int
		if fl, err = unix.FcntlInt(f.Fd(), unix.F_GETFL, 0); err == nil {
			_, err = unix.FcntlInt(f.Fd(), unix.F_SETFL, fl&^unix.O_NONBLOCK)
		}
	}
	if err != nil {
		f.Close()
	}
	return err
}

// openNoFollow opens a resolved path below the root without following any
// symlink and without leaving the root, even if the tree changed since it was
// resolved.
func (d *DirFS) openNoFollow(p string, flags int) (*os.File, error) {
	rootFd, err := unix.Open(d.root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(rootFd)
	fd, err := OpenBeneath(rootFd, p, flags)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), d.HostPath(p)), nil
}

// kindOf names the type of file of a stat mode, for messages.
func kindOf(m uint32) string {
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFIFO:
		return "a named pipe"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFLNK:
		return "a symlink"
	}
	return "a special file"
}

// ModeFromUnix converts a stat mode to a Go file mode.
func ModeFromUnix(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	if m&unix.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	}
	return mode
}

// ReadXattrs returns the extended attributes of a file (not following a
// final symlink), or nil when it has none or the filesystem has no xattrs.
func ReadXattrs(p string) (map[string]string, error) {
	buf := make([]byte, 256)
	var n int
	var err error
	for {
		n, err = unix.Llistxattr(p, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, len(buf)*4)
			continue
		}
		break
	}
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) {
			return nil, nil
		}
		return nil, fmt.Errorf("listing xattrs of %q: %w", p, err)
	}
	if n == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		val := make([]byte, 256)
		for {
			m, err := unix.Lgetxattr(p, name, val)
			if errors.Is(err, unix.ERANGE) {
				val = make([]byte, len(val)*4)
				continue
			}
			if errors.Is(err, unix.ENODATA) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("reading xattr %q of %q: %w", name, p, err)
			}
			out[name] = string(val[:m])
			break
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}
