package snapshot

import (
	"context"
	"fmt"
	"os"
	"path"
	"sort"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/pkg/fsview"
	"github.com/kiln-build/kiln/pkg/layer"
)

// Snapshotter finds what changed below a root between two points in time.
// It is not safe for concurrent use.
type Snapshotter struct {
	root  string
	opts  options
	state tree
}

// Stats summarises what a snapshot wrote.
type Stats struct {
	// Added, Changed and Deleted count paths, a deleted directory once.
	Added, Changed, Deleted int
	// Entries counts the tar entries written: the changes, their parent
	// directories, whiteouts, and unchanged names of changed hard links.
	Entries int
	// Bytes counts the file content written.
	Bytes int64
}

// String summarises s for logs: "3 added, 1 changed, 0 deleted (9 entries, 4096 bytes)".
func (s Stats) String() string {
	return fmt.Sprintf("%d added, %d changed, %d deleted (%d entries, %d bytes)", s.Added, s.Changed, s.Deleted, s.Entries, s.Bytes)
}

// New returns a Snapshotter for the tree below root (the container's "/").
func New(root string, opts ...Option) *Snapshotter {
	return &Snapshotter{root: root, opts: newOptions(opts)}
}

// Baseline records the current state of the tree.
func (s *Snapshotter) Baseline(ctx context.Context) error {
	rootFd, err := s.openRoot()
	if err != nil {
		return err
	}
	defer unix.Close(rootFd)
	start := time.Now()
	t, _, err := walk(ctx, rootFd, nil, &s.opts)
	if err != nil {
		return fmt.Errorf("snapshot of %q: %w", s.root, err)
	}
	walked := time.Now()
	s.state = t
	s.opts.log.Debugf("baseline of %q: %d directories in %v", s.root, len(t), walked.Sub(start))
	settleTimestamps(walked)
	return nil
}

// Diff walks the tree again and writes what changed since the last Baseline
// or Diff to tw: entries sorted by path, parent directories first. Without
// a Baseline the whole tree is written, as added to an empty one. The
// current state then becomes the baseline; after an error it stays as it
// was.
func (s *Snapshotter) Diff(ctx context.Context, tw layer.TarWriter) (Stats, error) {
	old := s.state
	if old == nil {
		old = tree{}
	}
	rootFd, err := s.openRoot()
	if err != nil {
		return Stats{}, err
	}
	defer unix.Close(rootFd)
	start := time.Now()
	t, changes, err := walk(ctx, rootFd, old, &s.opts)
	if err != nil {
		return Stats{}, fmt.Errorf("snapshot of %q: %w", s.root, err)
	}
	walked := time.Now()
	stats, err := writeChanges(tw, rootFd, t, changes)
	if err != nil {
		return stats, fmt.Errorf("snapshot of %q: %w", s.root, err)
	}
	s.state = t
	s.opts.log.Debugf("snapshot of %q: %s; walk %v, write %v", s.root, stats, walked.Sub(start), time.Since(walked))
	settleTimestamps(walked)
	return stats, nil
}

func (s *Snapshotter) openRoot() (int, error) {
	fd, err := unix.Open(s.root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("snapshot: opening root: %w", &os.PathError{Op: "open", Path: s.root, Err: err})
	}
	return fd, nil
}

// writeChanges writes the changes found by a walk that produced t. The
// entries to write are keyed by container path; a nil node is a whiteout.
func writeChanges(tw layer.TarWriter, rootFd int, t tree, changes []change) (Stats, error) {
	var stats Stats
	items := make(map[string]*node, len(changes))
	for _, c := range changes {
		switch c.kind {
		case added:
			stats.Added++
			items[c.path] = c.n
		case modified:
			stats.Changed++
			items[c.path] = c.n
		case deleted:
			stats.Deleted++
			items[path.Join(path.Dir(c.path), whiteoutPrefix+path.Base(c.path))] = nil
		}
	}
	addLinkSiblings(t, items)
	if err := addParents(t, items); err != nil {
		return stats, err
	}
	paths := make([]string, 0, len(items))
	for p := range items {
		paths = append(paths, p)
	}
	sort.Strings(paths) // a parent sorts before its children

	w := newEntryWriter(tw, &stats)
	cur := dirCursor{rootFd: rootFd, fd: -1}
	defer cur.close()
	for _, p := range paths {
		n := items[p]
		var err error
		switch {
		case n == nil:
			err = w.whiteout(p)
		case n.isDir():
			err = w.write(-1, p, n, t[p].xattrs)
		default:
			var dirFd int
			var xattrs map[string]string
			if dirFd, err = cur.open(path.Dir(p)); err != nil {
				return stats, err
			}
			if xattrs, err = fsview.ReadXattrs(procPath(dirFd, n.name)); err != nil {
				return stats, fmt.Errorf("%q: %w", p, err)
			}
			err = w.write(dirFd, p, n, xattrs)
		}
		if err != nil {
			return stats, err
		}
	}
	return stats, nil
}

// addLinkSiblings adds the unchanged names of changed hard-linked files: a
// layer cannot link to a file of a lower layer, so without them the link
// would be broken (the changed name would become a copy).
func addLinkSiblings(t tree, items map[string]*node) {
	inodes := map[uint64]bool{}
	for _, n := range items {
		if n != nil && n.isRegular() && n.nlink > 1 {
			inodes[n.ino] = true
		}
	}
	if len(inodes) == 0 {
		return
	}
	// Inode numbers repeat across filesystems; a sibling found by mistake
	// is only written as a copy (the writer links by device and inode).
	for dir, d := range t {
		for i := range d.nodes {
			n := &d.nodes[i]
			if n.isRegular() && n.nlink > 1 && inodes[n.ino] {
				if p := path.Join(dir, n.name); !has(items, p) {
					items[p] = n
				}
			}
		}
	}
}

// addParents adds every parent directory of the entries, so the layer
// extracts on runtimes that do not create missing parents.
func addParents(t tree, items map[string]*node) error {
	paths := make([]string, 0, len(items))
	for p := range items {
		paths = append(paths, p)
	}
	for _, p := range paths {
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if has(items, d) {
				break // added with its own parents
			}
			n := t.lookup(d)
			if n == nil {
				return fmt.Errorf("parent %q of %q is missing from the walk", d, p)
			}
			items[d] = n
		}
	}
	return nil
}

func has(items map[string]*node, p string) bool {
	_, ok := items[p]
	return ok
}
