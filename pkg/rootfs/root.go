package rootfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// Root is a directory on disk that nothing may escape.
//
// Every path given to its methods is a container path: "/etc/passwd" and
// "etc/passwd" both name a file below the directory. Symlinks met on the
// way are followed as if the process were chrooted there: an absolute
// target starts again at the directory, ".." stops at it. The resolution is
// done by the kernel on handles (openat2 RESOLVE_IN_ROOT, or
// cyphar/filepath-securejoin's pathrs-lite where openat2 is missing), never
// by joining strings, so a symlink swapped in meanwhile cannot lead outside.
//
// The final component of a path is not followed by the operations that act
// on a name (Lstat, Lchown, Remove, RemoveAll, Rename, OpenFile, WriteFile):
// a symlink there is acted on itself. Open, Stat, ReadFile, Chmod, Chtimes
// and Resolve follow it, inside the root.
//
// Errors name the container path, quoted, and wrap the system error, so
// errors.Is(err, fs.ErrNotExist) and errors.Is(err, unix.ENOTEMPTY) work.
// A Root is safe for concurrent use; Close it when done.
type Root struct {
	file *os.File // O_PATH handle on the directory
	host string   // its path as the kernel reports it
}

// Owner is a numeric owner.
type Owner struct{ UID, GID int }

// OpenRoot opens the directory dir as a Root. dir itself may be reached
// through symlinks; what lies below it is confined.
func OpenRoot(dir string) (*Root, error) {
	f, err := os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening root %q: %w", dir, errno(err))
	}
	host, err := fdPath(int(f.Fd()))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("opening root %q: %w", dir, err)
	}
	return &Root{file: f, host: host}, nil
}

// Close releases the handle on the directory.
func (r *Root) Close() error { return r.file.Close() }

// Dir returns the directory's path on the host, symlinks resolved.
func (r *Root) Dir() string { return r.host }

func (r *Root) fd() int { return int(r.file.Fd()) }

// clean makes p a clean absolute container path.
func clean(p string) string { return path.Clean("/" + p) }

// pathError describes a failed operation on the container path p.
func pathError(op, p string, err error) error {
	return fmt.Errorf("%s %q: %w", op, p, errno(err))
}

var errRoot = errors.New("the root itself cannot be removed or renamed")

// at resolves the parent directory of p inside the root and runs fn with a
// handle on it and p's final component ("." for the root itself).
func (r *Root) at(op, p string, fn func(dirfd int, base string) error) error {
	cp := clean(p)
	if cp == "/" {
		if err := fn(r.fd(), "."); err != nil {
			return pathError(op, cp, err)
		}
		return nil
	}
	dir, base := path.Split(cp)
	d, err := r.openDir(dir)
	if err != nil {
		return pathError(op, cp, err)
	}
	defer d.Close()
	if err := fn(int(d.Fd()), base); err != nil {
		return pathError(op, cp, err)
	}
	return nil
}

// openDir opens the directory dir, following symlinks inside the root. The
// handle is an O_PATH one: good for the *at system calls.
func (r *Root) openDir(dir string) (*os.File, error) {
	if clean(dir) == "/" {
		fd, err := unix.FcntlInt(r.file.Fd(), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		return os.NewFile(uintptr(fd), r.host), nil
	}
	f, err := pathrs.OpenatInRoot(r.file, dir)
	if err != nil {
		return nil, errno(err)
	}
	return f, nil
}

// resolve opens p following every symlink inside the root and returns an
// O_PATH handle on it with its resolved container path.
func (r *Root) resolve(p string) (*os.File, string, error) {
	f, err := r.openDir(p)
	if err != nil {
		return nil, "", err
	}
	host, err := fdPath(int(f.Fd()))
	if err == nil {
		var cp string
		if cp, err = r.containerPath(host); err == nil {
			return f, cp, nil
		}
	}
	f.Close()
	return nil, "", err
}

// containerPath maps a host path below the root to its container path.
func (r *Root) containerPath(host string) (string, error) {
	switch {
	case host == r.host:
		return "/", nil
	case r.host == "/":
		return host, nil
	case strings.HasPrefix(host, r.host+"/"):
		return host[len(r.host):], nil
	}
	return "", ErrPathEscapes
}

// Resolve returns the container path p leads to once every symlink is
// followed inside the root. The path must exist. The host path is
// filepath.Join(r.Dir(), resolved), for whatever needs one (a mount
// target); prefer the handle-based methods for reading and writing.
func (r *Root) Resolve(p string) (string, error) {
	f, cp, err := r.resolve(p)
	if err != nil {
		return "", pathError("resolving", clean(p), err)
	}
	f.Close()
	return cp, nil
}

// MkdirAll creates the directory p and its missing parents with exactly the
// permissions perm (setuid, setgid and sticky included; the umask does not
// apply) and, when owner is not nil, that owner. Existing directories are
// left as they are; symlinks to directories are followed inside the root,
// but nothing is created through a dangling one. It returns the container
// paths it created, parents first, so that a caller can undo it; on error,
// those created so far.
func (r *Root) MkdirAll(p string, perm fs.FileMode, owner *Owner) ([]string, error) {
	cp := clean(p)
	mode, err := unixMode(perm)
	if err != nil {
		return nil, pathError("creating directory", cp, err)
	}
	cur, err := unix.FcntlInt(r.file.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, pathError("creating directory", cp, err)
	}
	defer func() { unix.Close(cur) }()
	curPath := "/"
	var created []string
	for _, c := range splitPath(cp) {
		next, nextPath, made, err := r.stepDir(cur, curPath, c, mode, owner)
		if made {
			created = append(created, nextPath)
		}
		if err != nil {
			return created, fmt.Errorf("creating directory %q: %w", cp, err)
		}
		unix.Close(cur)
		cur, curPath = next, nextPath
	}
	return created, nil
}

// stepDir opens the directory name in dirfd (the container path dirPath),
// creating it with mode and owner when missing, or following it inside the
// root when it is a symlink. It returns the new handle and its resolved
// path, and whether it created it (then the path is returned even when
// setting its owner or mode failed, so that it can be removed).
func (r *Root) stepDir(dirfd int, dirPath, name string, mode uint32, owner *Owner) (int, string, bool, error) {
	p := path.Join(dirPath, name)
	for {
		fd, err := openDirNoFollow(dirfd, name)
		switch {
		case err == nil:
			return fd, p, false, nil
		case errors.Is(err, unix.ENOENT):
			err := unix.Mkdirat(dirfd, name, 0o700)
			if errors.Is(err, unix.EEXIST) {
				continue // created meanwhile: look again
			}
			if err != nil {
				return -1, "", false, fmt.Errorf("%q: %w", p, err)
			}
			fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err == nil && owner != nil {
				err = unix.Fchown(fd, owner.UID, owner.GID)
			}
			if err == nil {
				err = unix.Fchmod(fd, mode) // after chown, which may clear setgid
			}
			if err != nil {
				if fd >= 0 {
					unix.Close(fd)
				}
				return -1, p, true, fmt.Errorf("%q: %w", p, err)
			}
			return fd, p, true, nil
		case errors.Is(err, unix.ENOTDIR), errors.Is(err, unix.ELOOP):
			fd, resolved, err := r.followDirLink(dirfd, name, p)
			return fd, resolved, false, err
		default:
			return -1, "", false, fmt.Errorf("%q: %w", p, err)
		}
	}
}

// followDirLink opens the directory a symlink name in dirfd (the container
// path p) leads to inside the root.
func (r *Root) followDirLink(dirfd int, name, p string) (int, string, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return -1, "", fmt.Errorf("%q: %w", p, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		return -1, "", fmt.Errorf("%q is not a directory: %w", p, unix.ENOTDIR)
	}
	f, resolved, err := r.resolve(p)
	if errors.Is(err, unix.ENOENT) {
		return -1, "", fmt.Errorf("%q is a dangling symlink: %w", p, unix.ENOENT)
	}
	if err != nil {
		return -1, "", fmt.Errorf("resolving %q: %w", p, err)
	}
	defer f.Close()
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return -1, "", fmt.Errorf("resolving %q: %w", p, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return -1, "", fmt.Errorf("%q does not lead to a directory: %w", p, unix.ENOTDIR)
	}
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, "", fmt.Errorf("resolving %q: %w", p, err)
	}
	return fd, resolved, nil
}

// Remove removes the file, symlink or empty directory p.
func (r *Root) Remove(p string) error {
	return r.at("removing", p, func(dirfd int, base string) error {
		if base == "." {
			return errRoot
		}
		err := unix.Unlinkat(dirfd, base, 0)
		if errors.Is(err, unix.EISDIR) {
			err = unix.Unlinkat(dirfd, base, unix.AT_REMOVEDIR)
		}
		return err
	})
}

// RemoveAll removes p and, when it is a directory, everything below it,
// never following a symlink. A missing p is not an error.
func (r *Root) RemoveAll(p string) error {
	err := r.at("removing", p, func(dirfd int, base string) error {
		if base == "." {
			return errRoot
		}
		_, err := removeTree(dirfd, base, clean(p), nil, nil)
		return err
	})
	if errors.Is(err, unix.ENOENT) {
		return nil // a parent is missing: so is p
	}
	return err
}

// Clear removes everything below the directory dir, never following a
// symlink, except the paths keep reports and the directories holding them.
// It goes on past an entry it cannot remove and reports every failure.
func (r *Root) Clear(dir string, keep func(string) bool) error {
	f, err := r.openDir(dir)
	if err != nil {
		return pathError("clearing", dir, err)
	}
	defer f.Close()
	names, err := readNames(int(f.Fd()))
	if err != nil {
		return pathError("clearing", dir, err)
	}
	var errs []error
	for _, n := range names {
		p := path.Join(clean(dir), n)
		if _, err := removeTree(int(f.Fd()), n, p, keep, nil); err != nil {
			errs = append(errs, pathError("removing", p, err))
		}
	}
	return errors.Join(errs...)
}

// Rename moves oldpath to newpath, both inside the root, replacing what
// newpath names as rename(2) does.
func (r *Root) Rename(oldpath, newpath string) error {
	return Rename(r, oldpath, r, newpath)
}

// Rename moves oldpath inside src to newpath inside dst, which must be on
// the same filesystem (the error wraps unix.EXDEV otherwise: copy and
// remove instead). Neither final component is followed.
func Rename(src *Root, oldpath string, dst *Root, newpath string) error {
	op, np := clean(oldpath), clean(newpath)
	if op == "/" || np == "/" {
		return fmt.Errorf("renaming %q to %q: %w", op, np, errRoot)
	}
	odir, err := src.openDir(path.Dir(op))
	if err != nil {
		return pathError("renaming", op, err)
	}
	defer odir.Close()
	ndir, err := dst.openDir(path.Dir(np))
	if err != nil {
		return pathError("renaming to", np, err)
	}
	defer ndir.Close()
	if err := unix.Renameat(int(odir.Fd()), path.Base(op), int(ndir.Fd()), path.Base(np)); err != nil {
		return fmt.Errorf("renaming %q to %q: %w", op, np, err)
	}
	return nil
}

// OpenFile opens the regular file p like os.OpenFile, with perm (reduced by
// the umask) for a file O_CREATE makes. Its parent must exist. A symlink at
// p is not followed (unix.ELOOP), and anything but a regular file is
// refused without blocking (ErrSpecialFile): opening a named pipe would wait
// for a writer, a device could be read forever.
func (r *Root) OpenFile(p string, flag int, perm fs.FileMode) (*os.File, error) {
	var f *os.File
	err := r.at("opening", p, func(dirfd int, base string) error {
		if base == "." {
			return unix.EISDIR
		}
		var st unix.Stat_t
		err := unix.Fstatat(dirfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == nil && st.Mode&unix.S_IFMT != unix.S_IFREG {
			return specialFile(st.Mode)
		}
		fd, err := unix.Openat(dirfd, base, flag|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, uint32(perm.Perm()))
		if err != nil {
			return err
		}
		if f, err = regularFile(fd, clean(p)); err != nil {
			return err
		}
		return nil
	})
	return f, err
}

// WriteFile writes data to the regular file p, creating it with perm
// (reduced by the umask) or truncating it, like os.WriteFile; a symlink at
// p is refused rather than followed.
func (r *Root) WriteFile(p string, data []byte, perm fs.FileMode) error {
	f, err := r.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return pathError("writing", clean(p), err)
	}
	return nil
}

// Open opens the regular file or directory p for reading, following
// symlinks inside the root. Anything else is refused (ErrSpecialFile)
// without being opened, so a named pipe cannot block the caller and a
// device is never read.
func (r *Root) Open(p string) (*os.File, error) {
	cp := clean(p)
	h, _, err := r.resolve(cp)
	if err != nil {
		return nil, pathError("opening", cp, err)
	}
	defer h.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(h.Fd()), &st); err != nil {
		return nil, pathError("opening", cp, err)
	}
	flags := unix.O_RDONLY | unix.O_CLOEXEC
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		flags |= unix.O_DIRECTORY
	default:
		return nil, pathError("opening", cp, specialFile(st.Mode))
	}
	f, err := pathrs.Reopen(h, flags)
	if err != nil {
		return nil, pathError("opening", cp, err)
	}
	return f, nil
}

// ReadFile reads the regular file p, following symlinks inside the root,
// and fails with ErrTooLarge rather than read more than limit bytes.
func (r *Root) ReadFile(p string, limit int64) ([]byte, error) {
	f, err := r.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readLimited(f, clean(p), limit)
}

// ReadHostFile reads a file the user named on the host, outside any root
// (a Dockerfile given with an absolute path, say): symlinks are followed as
// usual, but anything other than a regular file is refused without
// blocking (ErrSpecialFile: a named pipe would wait for a writer, a device
// could be read forever) and a file over limit bytes fails with
// ErrTooLarge. Errors name the path.
func ReadHostFile(name string, limit int64) ([]byte, error) {
	fd, err := unix.Open(name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, pathError("opening", name, err)
	}
	f, err := regularFile(fd, name)
	if err != nil {
		return nil, pathError("opening", name, err)
	}
	defer f.Close()
	return readLimited(f, name, limit)
}

// readLimited reads the regular file f, named p in errors, up to limit.
func readLimited(f *os.File, p string, limit int64) ([]byte, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, pathError("reading", p, err)
	}
	if st.IsDir() {
		return nil, pathError("reading", p, unix.EISDIR)
	}
	if !st.Mode().IsRegular() {
		return nil, pathError("reading", p, ErrSpecialFile)
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("reading %q: %w: %d bytes, more than the limit of %s", p, ErrTooLarge, st.Size(), formatSize(limit))
	}
	// The size may change while reading: the limit holds anyway.
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, pathError("reading", p, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("reading %q: %w: more than the limit of %s", p, ErrTooLarge, formatSize(limit))
	}
	return data, nil
}

// formatSize writes a size limit the way people think of it.
func formatSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// Lstat describes p without following a final symlink.
func (r *Root) Lstat(p string) (fs.FileInfo, error) {
	var fi fs.FileInfo
	err := r.at("lstat", p, func(dirfd int, base string) (err error) {
		// The handle's magic link is followed, base is not.
		fi, err = os.Lstat(procPath(dirfd, base))
		return err
	})
	return fi, err
}

// Stat describes p, following symlinks inside the root.
func (r *Root) Stat(p string) (fs.FileInfo, error) {
	cp := clean(p)
	h, _, err := r.resolve(cp)
	if err != nil {
		return nil, pathError("stat", cp, err)
	}
	defer h.Close()
	fi, err := h.Stat()
	if err != nil {
		return nil, pathError("stat", cp, err)
	}
	return fi, nil
}

// Chmod sets the permissions of p (setuid, setgid and sticky included),
// following symlinks inside the root: a symlink has no mode of its own.
func (r *Root) Chmod(p string, mode fs.FileMode) error {
	m, err := unixMode(mode)
	if err != nil {
		return pathError("chmod", clean(p), err)
	}
	return r.onResolved("chmod", p, func(proc string) error {
		return unix.Fchmodat(unix.AT_FDCWD, proc, m, 0)
	})
}

// Lchown sets the owner of p without following a final symlink.
func (r *Root) Lchown(p string, uid, gid int) error {
	return r.at("chown", p, func(dirfd int, base string) error {
		return unix.Fchownat(dirfd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
	})
}

// Chtimes sets the access and modification times of p, following symlinks
// inside the root.
func (r *Root) Chtimes(p string, atime, mtime time.Time) error {
	ts := []unix.Timespec{timespec(atime), timespec(mtime)}
	return r.onResolved("setting times of", p, func(proc string) error {
		return unix.UtimesNanoAt(unix.AT_FDCWD, proc, ts, 0)
	})
}

// onResolved resolves p inside the root and runs fn with the /proc path of
// the handle, for the system calls that have no form taking an O_PATH
// handle: the kernel follows that magic link to the file itself.
func (r *Root) onResolved(op, p string, fn func(proc string) error) error {
	cp := clean(p)
	h, _, err := r.resolve(cp)
	if err != nil {
		return pathError(op, cp, err)
	}
	defer h.Close()
	if err := fn(procFdPath(int(h.Fd()))); err != nil {
		return pathError(op, cp, err)
	}
	return nil
}

// regularFile turns the descriptor fd into a file if it is a regular one,
// and closes it otherwise.
func regularFile(fd int, name string) (*os.File, error) {
	var st unix.Stat_t
	err := unix.Fstat(fd, &st)
	if err == nil && st.Mode&unix.S_IFMT != unix.S_IFREG {
		err = specialFile(st.Mode)
	}
	if err == nil {
		// Back to blocking mode: O_NONBLOCK only guarded the open.
		var fl int
		if fl, err = unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); err == nil {
			_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl&^unix.O_NONBLOCK)
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

// specialFile describes why a file of mode m is refused.
func specialFile(m uint32) error {
	kind := "a special file"
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		return unix.EISDIR
	case unix.S_IFLNK:
		return unix.ELOOP
	case unix.S_IFIFO:
		kind = "a named pipe"
	case unix.S_IFCHR:
		kind = "a character device"
	case unix.S_IFBLK:
		kind = "a block device"
	case unix.S_IFSOCK:
		kind = "a socket"
	}
	return fmt.Errorf("%w: it is %s", ErrSpecialFile, kind)
}

// unixMode converts permissions to a mode for chmod.
func unixMode(m fs.FileMode) (uint32, error) {
	if m&^(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
		return 0, fmt.Errorf("invalid permissions %v: only permission bits, setuid, setgid and sticky", m)
	}
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= unix.S_ISUID
	}
	if m&fs.ModeSetgid != 0 {
		u |= unix.S_ISGID
	}
	if m&fs.ModeSticky != 0 {
		u |= unix.S_ISVTX
	}
	return u, nil
}

// splitPath returns the components of a clean absolute path.
func splitPath(p string) []string {
	if p == "/" {
		return nil
	}
	return strings.Split(p[1:], "/")
}
