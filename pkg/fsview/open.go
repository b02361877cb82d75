package fsview

import (
	"errors"
	"os"
	"path"
	"strconv"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// OpenBeneath opens the container path p below the directory handle rootFd
// without following any symlink and without leaving the root: what is read
// is what a walk or a resolution saw, even if a process swapped a directory
// for a link meanwhile. It returns the new file descriptor. A symlink on
// the way fails the open (ELOOP, or ENOTDIR for a parent).
//
// The kernel checks it (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS). Where
// openat2 is missing (Linux before 5.6, or a seccomp profile that predates
// it), the parent directory is opened with cyphar/filepath-securejoin's
// pathrs-lite, which keeps the lookup inside the root, and its path is then
// checked to be the one asked for, which no symlink could have changed.
func OpenBeneath(rootFd int, p string, flags int) (int, error) {
	rel := strings.TrimPrefix(Clean(p), "/")
	if rel == "" {
		rel = "."
	}
	fd, err := unix.Openat2(rootFd, rel, &unix.OpenHow{
		Flags:   uint64(flags | unix.O_NOFOLLOW | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		return openBeneathFallback(rootFd, rel, flags)
	}
	return fd, err
}

// openBeneathFallback is OpenBeneath without openat2. rel is clean and
// relative ("." for the root).
func openBeneathFallback(rootFd int, rel string, flags int) (int, error) {
	if rel == "." {
		return unix.Openat(rootFd, ".", flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	dup, err := unix.FcntlInt(uintptr(rootFd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	root := os.NewFile(uintptr(dup), ".")
	defer root.Close()
	dir, base := path.Split(rel)
	parent := root
	if dir != "" {
		if parent, err = pathrs.OpenatInRoot(root, dir); err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				return -1, pe.Err
			}
			return -1, err
		}
		defer parent.Close()
		// pathrs-lite followed any symlink inside the root; refuse if one
		// was on the way, as openat2 would have.
		rootPath, err := procFdPath(root)
		if err != nil {
			return -1, err
		}
		got, err := procFdPath(parent)
		if err != nil {
			return -1, err
		}
		if got != path.Join(rootPath, dir) {
			return -1, unix.ELOOP
		}
	}
	return unix.Openat(int(parent.Fd()), base, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
}

// procFdPath returns the host path of an open file, as the kernel sees it.
func procFdPath(f *os.File) (string, error) {
	return os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
}
