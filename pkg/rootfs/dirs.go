package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"

	"golang.org/x/sys/unix"
)

// dirHandle is an open directory inside the root.
type dirHandle struct {
	fd      int    // O_PATH handle; -1 for an ignored directory that is not opened
	path    string // resolved container path
	ignored bool   // the directory or one of its parents is ignored
	setgid  bool   // new entries inherit the directory's group
}

// maxCachedDirs bounds the open directory handles. Layers list entries
// directory by directory, so a small cache already resolves almost every
// parent with a single openat from its own parent's handle.
const maxCachedDirs = 256

// dirCache maps directory names as they appear in the tar (clean, absolute)
// to handles. Handles are only closed between entries (refresh), so those an
// entry holds stay valid while it is processed.
type dirCache struct {
	rootFd     int
	rootSetgid bool
	m          map[string]*dirHandle
	stale      bool
}

func newDirCache(rootFd int) (dirCache, error) {
	c := dirCache{rootFd: rootFd}
	var st unix.Stat_t
	if err := unix.Fstat(rootFd, &st); err != nil {
		return c, err
	}
	c.rootSetgid = st.Mode&unix.S_ISGID != 0
	c.reset()
	return c, nil
}

// invalidate is called when a directory or a symlink was removed or
// replaced: a cached name may now resolve elsewhere.
func (c *dirCache) invalidate() { c.stale = true }

// refresh drops the cached handles if they may be wrong or too many.
func (c *dirCache) refresh() {
	if c.stale || len(c.m) > maxCachedDirs {
		c.reset()
	}
}

func (c *dirCache) reset() {
	for _, h := range c.m {
		if h.fd >= 0 && h.fd != c.rootFd {
			unix.Close(h.fd)
		}
	}
	c.m = map[string]*dirHandle{"/": {fd: c.rootFd, path: "/", setgid: c.rootSetgid}}
	c.stale = false
}

// dir returns a handle on the directory called name in the tar, following
// symlinks inside the root. Missing directories are created with mode 0755
// when create is set; otherwise dir returns nil for them. Nothing is created
// inside an ignored directory: its handle is returned with ignored set.
func (x *extractor) dir(name string, create bool) (*dirHandle, error) {
	if h, ok := x.dirs.m[name]; ok {
		return h, nil
	}
	parent, err := x.dir(path.Dir(name), create)
	if err != nil || parent == nil {
		return nil, err
	}
	base := path.Base(name)
	h := &dirHandle{fd: -1, path: path.Join(parent.path, base)}
	h.ignored = parent.ignored || x.ignored(h.path)
	if !h.ignored {
		fd, err := openDirNoFollow(parent.fd, base)
		if errors.Is(err, unix.ENOENT) {
			if !create {
				return nil, nil
			}
			if err := unix.Mkdirat(parent.fd, base, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
				return nil, fmt.Errorf("creating parent directory %q: %w", h.path, err)
			}
			fd, err = openDirNoFollow(parent.fd, base)
		}
		switch {
		case err == nil:
			if err := h.open(fd); err != nil {
				return nil, fmt.Errorf("parent directory %q: %w", h.path, err)
			}
		case errors.Is(err, unix.ENOTDIR):
			if h, err = x.followSymlink(parent, base, create); err != nil || h == nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("opening parent directory %q: %w", h.path, err)
		}
	}
	x.dirs.m[name] = h
	return h, nil
}

// open makes the directory handle fd h's.
func (h *dirHandle) open(fd int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return err
	}
	h.fd, h.setgid = fd, st.Mode&unix.S_ISGID != 0
	return nil
}

func openDirNoFollow(dirfd int, base string) (int, error) {
	return unix.Openat(dirfd, base, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
}

// followSymlink resolves the parent component base of dir, which is not a
// directory, as a chroot would: a symlink is followed inside the root (a layer
// entry "bin/x" over /bin -> usr/bin lands in /usr/bin). Nothing is created
// through a dangling symlink (Docker refuses too). When it leads to no
// directory, dir's caller gets an error if it would create, nil if it only
// looks.
func (x *extractor) followSymlink(parent *dirHandle, base string, create bool) (*dirHandle, error) {
	p := path.Join(parent.path, base)
	noDir := func(format string) (*dirHandle, error) {
		if !create {
			return nil, nil
		}
		return nil, fmt.Errorf(format, p)
	}
	var st unix.Stat_t
	if err := unix.Fstatat(parent.fd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, fmt.Errorf("parent %q: %w", p, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		return noDir("parent %q is not a directory")
	}
	f, resolved, err := x.root.resolve(p)
	if errors.Is(err, unix.ENOENT) {
		return noDir("parent %q is a dangling symlink")
	}
	if err != nil {
		return nil, fmt.Errorf("resolving parent %q: %w", p, err)
	}
	defer f.Close()
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("resolving parent %q: %w", p, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return noDir("parent %q does not lead to a directory")
	}
	h := &dirHandle{fd: -1, path: resolved}
	for q := resolved; ; q = path.Dir(q) {
		if x.ignored(q) {
			h.ignored = true
			return h, nil
		}
		if q == "/" {
			break
		}
	}
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err == nil {
		err = h.open(fd)
	}
	if err != nil {
		return nil, fmt.Errorf("resolving parent %q: %w", p, err)
	}
	return h, nil
}

// fdPath returns the host path of an open file, as the kernel sees it.
func fdPath(fd int) (string, error) {
	p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return "", fmt.Errorf("finding the path of a handle (is /proc mounted?): %w", err)
	}
	return p, nil
}

// procPath names base in the directory handle dir for the path-only system
// calls (xattrs) that have no *at form; the final component is not followed
// by the l* variants.
func procPath(dir int, base string) string {
	return procFdPath(dir) + "/" + base
}

// procFdPath names the file behind the handle fd itself.
func procFdPath(fd int) string {
	return "/proc/self/fd/" + strconv.Itoa(fd)
}
