package snapshot

import (
	"errors"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// openBeneath opens the container path p below the root handle without
// following any symlink: what is read for a layer is what the walk saw, even
// if a process left behind by the command swaps a directory for a link.
func openBeneath(rootFd int, p string, flags int) (int, error) {
	rel := strings.TrimPrefix(p, "/")
	if rel == "" {
		rel = "."
	}
	fd, err := unix.Openat2(rootFd, rel, &unix.OpenHow{
		Flags:   uint64(flags | unix.O_NOFOLLOW | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		// No openat2 (before Linux 5.6, or a seccomp profile that
		// predates it): walk the components, refusing symlinks.
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

var direntBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// readNames lists the open directory fd, without "." and "..".
func readNames(fd int) ([]string, error) {
	bp := direntBufs.Get().(*[]byte) //nolint:forcetypeassert // the pool holds only these
	defer direntBufs.Put(bp)
	var names []string
	for {
		n, err := unix.Getdents(fd, *bp)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent((*bp)[:n], -1, names)
	}
}

// procPath names the entry base of the directory handle dirFd for the
// path-only xattr calls: the handle is followed, base is not.
func procPath(dirFd int, base string) string {
	return "/proc/self/fd/" + strconv.Itoa(dirFd) + "/" + base
}
