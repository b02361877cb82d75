package snapshot

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/pkg/fsview"
	"github.com/kiln-build/kiln/pkg/layer"
)

const (
	whiteoutPrefix = ".wh."
	opaqueWhiteout = whiteoutPrefix + whiteoutPrefix + ".opq"
)

// entryWriter writes the entries of one layer read from a tree on disk.
type entryWriter struct {
	tw layer.TarWriter
	// links maps a hard-linked inode to the first name written for it;
	// later names become links to that one.
	links map[[2]uint64]string
	buf   []byte
	stats *Stats
}

func newEntryWriter(tw layer.TarWriter, stats *Stats) *entryWriter {
	return &entryWriter{tw: tw, links: map[[2]uint64]string{}, buf: make([]byte, 128<<10), stats: stats}
}

// whiteout writes the OCI whiteout at the container path p: ".../.wh.X"
// or the opaque marker.
func (w *entryWriter) whiteout(p string) error {
	w.stats.Entries++
	return w.tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg,
		Name:     strings.TrimPrefix(p, "/"),
		ModTime:  time.Unix(0, 0),
		Format:   tar.FormatPAX,
	})
}

// write writes the entry n at the container path p; dirFd is a handle on
// its directory. A regular file is described by the file it opened, not by
// n, so that header and content agree.
func (w *entryWriter) write(dirFd int, p string, n *node, xattrs map[string]string) error {
	if !n.isRegular() {
		w.stats.Entries++
		return w.tw.WriteHeader(n.entry(p, xattrs).Header())
	}
	fd, err := unix.Openat(dirFd, n.name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %q: %w", p, err)
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat %q: %w", p, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%q changed while the snapshot was taken", p)
	}
	cur := nodeFromStat(n.name, &st)
	hdr := cur.entry(p, xattrs).Header()
	if st.Nlink > 1 {
		key := [2]uint64{st.Dev, st.Ino}
		if first, ok := w.links[key]; ok {
			hdr.Typeflag, hdr.Linkname, hdr.Size, hdr.PAXRecords = tar.TypeLink, strings.TrimPrefix(first, "/"), 0, nil
			w.stats.Entries++
			return w.tw.WriteHeader(hdr)
		}
		w.links[key] = p
	}
	w.stats.Entries++
	if err := w.tw.WriteHeader(hdr); err != nil {
		return err
	}
	copied, err := io.CopyBuffer(w.tw, io.LimitReader(f, hdr.Size), w.buf)
	w.stats.Bytes += copied
	if err != nil {
		return fmt.Errorf("reading %q: %w", p, err)
	}
	if copied != hdr.Size {
		return fmt.Errorf("%q shrank while the snapshot was taken", p)
	}
	return nil
}

// dirCursor keeps a handle on the directory of the entries being written:
// they come sorted, so consecutive entries mostly share it.
type dirCursor struct {
	rootFd int
	p      string
	fd     int
}

func (c *dirCursor) open(p string) (int, error) {
	if c.fd >= 0 && c.p == p {
		return c.fd, nil
	}
	c.close()
	fd, err := fsview.OpenBeneath(c.rootFd, p, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return -1, fmt.Errorf("opening directory %q: %w", p, err)
	}
	c.p, c.fd = p, fd
	return fd, nil
}

func (c *dirCursor) close() {
	if c.fd >= 0 {
		unix.Close(c.fd)
		c.fd = -1
	}
}
