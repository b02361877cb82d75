package snapshot

import (
	"context"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/pkg/fsview"
	"github.com/kiln-build/kiln/pkg/layer"
)

// Overlay's own xattrs, in the trusted namespace or, for mounts with the
// userxattr option (rootless), the user namespace.
var overlayXattrPrefixes = []string{"trusted.overlay.", "user.overlay."}

// FromOverlayUpper writes the content of an overlayfs upper directory, which
// holds exactly what changed above the lower layers, as layer entries:
// whiteouts (character devices 0/0) become ".wh.NAME", opaque directories
// get a ".wh..wh..opq" entry, and overlay's own xattrs are dropped. Entries
// come parents first, each directory's entries sorted. Overlay does not
// record whether a file was added or modified: every entry counts as
// Changed, every whiteout as Deleted.
//
// An upper written with redirect_dir or metacopy refers to lower files it
// does not hold; it cannot be converted and is reported as an error.
func FromOverlayUpper(ctx context.Context, upper string, tw layer.TarWriter, opts ...Option) (Stats, error) {
	o := newOptions(opts)
	rootFd, err := unix.Open(upper, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Stats{}, fmt.Errorf("overlay upper: %w", &os.PathError{Op: "open", Path: upper, Err: err})
	}
	defer unix.Close(rootFd)
	var stats Stats
	c := &upperConverter{rootFd: rootFd, ignore: o.ignore, log: o.log, w: newEntryWriter(tw, &stats)}
	if err := c.dir(ctx, "/"); err != nil {
		return stats, fmt.Errorf("overlay upper %q: %w", upper, err)
	}
	return stats, nil
}

type upperConverter struct {
	rootFd int
	ignore func(p string) bool
	log    logrus.FieldLogger
	w      *entryWriter
}

func (c *upperConverter) dir(ctx context.Context, p string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	fd, err := fsview.OpenBeneath(c.rootFd, p, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("opening directory %q: %w", p, err)
	}
	defer unix.Close(fd)
	names, err := readNames(fd)
	if err != nil {
		return fmt.Errorf("listing directory %q: %w", p, err)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := c.entry(ctx, fd, p, name); err != nil {
			return err
		}
	}
	return nil
}

// entry converts the entry name of the directory dirFd (container path dir).
func (c *upperConverter) entry(ctx context.Context, dirFd int, dir, name string) error {
	p := path.Join(dir, name)
	if c.ignore(p) {
		return nil
	}
	if strings.HasPrefix(name, whiteoutPrefix) {
		c.log.Debugf("leaving %q out of the layer: its name marks a whiteout in layers", p)
		return nil
	}
	var st unix.Stat_t
	if err := unix.Fstatat(dirFd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("lstat %q: %w", p, err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFSOCK:
		return nil
	case unix.S_IFCHR:
		if st.Rdev == 0 {
			c.w.stats.Deleted++
			return c.w.whiteout(path.Join(dir, whiteoutPrefix+name))
		}
	}
	n := nodeFromStat(name, &st)
	if n.fileType() == unix.S_IFLNK {
		var err error
		if n.link, err = readlinkat(dirFd, name, st.Size); err != nil {
			return fmt.Errorf("reading symlink %q: %w", p, err)
		}
	}
	xattrs, err := fsview.ReadXattrs(procPath(dirFd, name))
	if err != nil {
		return fmt.Errorf("%q: %w", p, err)
	}
	opaque := false
	for k, v := range xattrs {
		for _, prefix := range overlayXattrPrefixes {
			attr, ok := strings.CutPrefix(k, prefix)
			if !ok {
				continue
			}
			switch attr {
			case "opaque":
				opaque = v == "y"
			case "redirect", "metacopy":
				return fmt.Errorf("%q has the overlay xattr %q: the upper was written with redirect_dir or metacopy and does not hold the whole change", p, k)
			}
			delete(xattrs, k)
		}
	}
	c.w.stats.Changed++
	if err := c.w.write(dirFd, p, &n, xattrs); err != nil {
		return err
	}
	if !n.isDir() {
		return nil
	}
	if opaque {
		if err := c.w.whiteout(path.Join(p, opaqueWhiteout)); err != nil {
			return err
		}
	}
	return c.dir(ctx, p)
}
