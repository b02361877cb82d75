package snapshot

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/pkg/fsview"
)

type changeKind uint8

const (
	added changeKind = iota
	modified
	deleted
)

// change is one difference found by a walk: n is the current node (nil for
// a deletion).
type change struct {
	path string
	kind changeKind
	n    *node
}

// walker reads the state of the tree below a root, one directory per task,
// and, when it has an old state, compares each directory with it.
type walker struct {
	rootFd int
	ignore func(p string) bool
	log    logrus.FieldLogger
	old    tree // nil for a baseline: nothing to compare

	mu      sync.Mutex
	tree    tree
	changes []change
}

// walk reads the whole tree with at most workers directories in flight.
func walk(ctx context.Context, rootFd int, old tree, o *options) (tree, []change, error) {
	w := &walker{rootFd: rootFd, ignore: o.ignore, log: o.log, old: old, tree: tree{}}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(o.workers)
	g.Go(func() error { return w.dir(ctx, g, "/", nil, nil) })
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	return w.tree, w.changes, nil
}

// dir reads the directory p, whose node is self (nil for the root) and whose
// node in the old state was old (nil if it did not exist), then schedules
// its subdirectories. A subdirectory is walked by another task when one is
// free and inline otherwise, so the pool never waits on itself.
func (w *walker) dir(ctx context.Context, g *errgroup.Group, p string, self, old *node) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var oldState *dirState
	if w.old != nil && (self == nil || old != nil && old.isDir()) {
		oldState = w.old[p]
	}
	fd, err := fsview.OpenBeneath(w.rootFd, p, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("opening directory %q: %w", p, err)
	}
	state, err := w.read(fd, p, self, old, oldState)
	unix.Close(fd)
	if err != nil {
		return err
	}
	changes, subdirs := w.compare(p, self, old, state, oldState)

	w.mu.Lock()
	w.tree[p] = state
	w.changes = append(w.changes, changes...)
	w.mu.Unlock()

	for _, sd := range subdirs {
		task := func() error { return w.dir(ctx, g, sd.path, sd.self, sd.old) }
		if !g.TryGo(task) {
			if err := task(); err != nil {
				return err
			}
		}
	}
	return nil
}

// subdir is a directory still to walk, with its node now and before.
type subdir struct {
	path      string
	self, old *node
}

// compare lists the changes of the directory p (node self, formerly old)
// whose entries are state now and oldState before, and its subdirectories.
// A subdirectory reports its own change when it is walked: its xattrs are
// only read then.
func (w *walker) compare(p string, self, old *node, state, oldState *dirState) ([]change, []subdir) {
	var changes []change
	if w.old != nil && self != nil {
		switch {
		case old == nil:
			changes = append(changes, change{path: p, kind: added, n: self})
		case !old.isDir() || dirChanged(self, old, state.xattrs, oldState.xattrs):
			changes = append(changes, change{path: p, kind: modified, n: self})
		}
	}
	var subdirs []subdir
	var oldNodes []node
	if oldState != nil {
		oldNodes = oldState.nodes
	}
	// Both lists are sorted by name: merge them.
	i, j := 0, 0
	for i < len(oldNodes) || j < len(state.nodes) {
		var o, n *node
		switch {
		case j == len(state.nodes) || i < len(oldNodes) && oldNodes[i].name < state.nodes[j].name:
			o = &oldNodes[i]
			i++
		case i == len(oldNodes) || state.nodes[j].name < oldNodes[i].name:
			n = &state.nodes[j]
			j++
		default:
			o, n = &oldNodes[i], &state.nodes[j]
			i++
			j++
		}
		switch {
		case n == nil:
			// A path that became ignored (a VOLUME declared since) was not
			// deleted: it is only no longer looked at.
			if q := path.Join(p, o.name); !w.ignore(q) {
				changes = append(changes, change{path: q, kind: deleted})
			}
		case n.isDir():
			subdirs = append(subdirs, subdir{path: path.Join(p, n.name), self: n, old: o})
		case w.old == nil:
		case o == nil:
			changes = append(changes, change{path: path.Join(p, n.name), kind: added, n: n})
		case o.fileType() != n.fileType() || n.changed(o):
			changes = append(changes, change{path: path.Join(p, n.name), kind: modified, n: n})
		}
	}
	return changes, subdirs
}

// read lists the open directory fd (container path p) and lstats its
// entries. Ignored paths are left out, and so is what no layer can carry:
// sockets, and names starting with ".wh." (extractors take them for
// whiteouts).
func (w *walker) read(fd int, p string, self, old *node, oldState *dirState) (*dirState, error) {
	names, err := readNames(fd)
	if err != nil {
		return nil, fmt.Errorf("listing directory %q: %w", p, err)
	}
	sort.Strings(names)
	state := &dirState{nodes: make([]node, 0, len(names))}
	for _, name := range names {
		if w.ignore(path.Join(p, name)) {
			continue
		}
		if strings.HasPrefix(name, whiteoutPrefix) {
			w.log.Debugf("leaving %q out of the snapshot: its name marks a whiteout in layers", path.Join(p, name))
			continue
		}
		var st unix.Stat_t
		if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue // removed while listing
			}
			return nil, fmt.Errorf("lstat %q: %w", path.Join(p, name), err)
		}
		if st.Mode&unix.S_IFMT == unix.S_IFSOCK {
			continue
		}
		n := nodeFromStat(name, &st)
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			if n.link, err = readlinkat(fd, name, st.Size); err != nil {
				return nil, fmt.Errorf("reading symlink %q: %w", path.Join(p, name), err)
			}
		}
		state.nodes = append(state.nodes, n)
	}

	// The root's own metadata never goes into a layer.
	if self == nil {
		return state, nil
	}
	// A directory's xattrs are read again only when its ctime moved.
	if oldState != nil && old.ctime == self.ctime {
		state.xattrs = oldState.xattrs
		return state, nil
	}
	if state.xattrs, err = fsview.ReadXattrs(procPath(fd, ".")); err != nil {
		return nil, fmt.Errorf("directory %q: %w", p, err)
	}
	return state, nil
}

func readlinkat(dirFd int, name string, size int64) (string, error) {
	buf := make([]byte, max(size+1, 64))
	for {
		n, err := unix.Readlinkat(dirFd, name, buf)
		if err != nil {
			return "", err
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
		buf = make([]byte, 2*len(buf))
	}
}
