package snapshot

import (
	"errors"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

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
