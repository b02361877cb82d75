package fsview

import (
	"errors"
	"strings"

	"golang.org/x/sys/unix"
)

// OpenBeneath opens the container path p below the directory handle rootFd
// without following any symlink and without leaving the root: what is read
// is what a walk or a resolution saw, even if a process swapped a directory
// for a link meanwhile. It returns the new file descriptor.
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
		// No openat2 (before Linux 5.6, or a seccomp profile that predates
		// it): walk the components, refusing symlinks.
		return openByComponents(rootFd, rel, flags)
	}
	return fd, err
}

func openByComponents(rootFd int, rel string, flags int) (int, error) {
	dir, err := unix.Openat(rootFd, ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	parts := strings.Split(rel, "/")
	for i, c := range parts {
		fl := unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
		if i == len(parts)-1 {
			fl = flags | unix.O_NOFOLLOW | unix.O_CLOEXEC
		}
		next, err := unix.Openat(dir, c, fl, 0)
		unix.Close(dir)
		if err != nil {
			return -1, err
		}
		dir = next
	}
	return dir, nil
}
