package snapshot

import (
	"path"
	"sort"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/pkg/fsview"
)

// node is the recorded metadata of one directory entry. One is kept per
// file of the root between snapshots, so it holds only what change
// detection and the layer headers need (88 bytes plus the name).
type node struct {
	name  string
	link  string // symlink target
	ino   uint64
	size  int64
	mtime int64 // nanoseconds since the epoch
	ctime int64
	rdev  uint64
	mode  uint32 // st_mode: type and permission bits
	uid   uint32
	gid   uint32
	nlink uint32
}

// dirState is the state of one directory: its entries sorted by name and
// its own extended attributes. Directory xattrs are recorded because a
// directory's ctime also moves when entries are added or removed, so ctime
// alone cannot tell that its xattrs changed.
type dirState struct {
	nodes  []node
	xattrs map[string]string
}

// tree maps the container path of every directory to its state.
type tree map[string]*dirState

func nodeFromStat(name string, st *unix.Stat_t) node {
	return node{
		name:  name,
		ino:   st.Ino,
		size:  st.Size,
		mtime: st.Mtim.Nano(),
		ctime: st.Ctim.Nano(),
		rdev:  st.Rdev,
		mode:  st.Mode,
		uid:   st.Uid,
		gid:   st.Gid,
		nlink: uint32(st.Nlink),
	}
}

func (n *node) fileType() uint32 { return n.mode & unix.S_IFMT }
func (n *node) isDir() bool      { return n.fileType() == unix.S_IFDIR }
func (n *node) isRegular() bool  { return n.fileType() == unix.S_IFREG }

// changed reports whether a non-directory differs from its recorded state.
// ctime catches what the other fields miss: content rewritten with the
// mtime restored, xattr changes, a new hard link (the link count moved).
func (n *node) changed(old *node) bool {
	return n.ino != old.ino || n.size != old.size || n.mode != old.mode ||
		n.uid != old.uid || n.gid != old.gid || n.mtime != old.mtime ||
		n.ctime != old.ctime || n.rdev != old.rdev || n.link != old.link
}

// dirChanged reports whether a directory differs from its recorded state.
// Its ctime alone does not count: it moves whenever an entry is added or
// removed (those are reported themselves) and when a sandbox created and
// removed a mount stub; it only says that the xattrs must be compared.
func dirChanged(n, old *node, xattrs, oldXattrs map[string]string) bool {
	if n.mode != old.mode || n.uid != old.uid || n.gid != old.gid || n.mtime != old.mtime {
		return true
	}
	return n.ctime != old.ctime && !equalXattrs(xattrs, oldXattrs)
}

func equalXattrs(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// entry describes n at the container path p for a layer header.
func (n *node) entry(p string, xattrs map[string]string) *fsview.Entry {
	e := &fsview.Entry{
		Path:     p,
		Mode:     fsview.ModeFromUnix(n.mode),
		UID:      int(n.uid),
		GID:      int(n.gid),
		ModTime:  time.Unix(0, n.mtime),
		Linkname: n.link,
		Xattrs:   xattrs,
	}
	switch n.fileType() {
	case unix.S_IFREG:
		e.Size = n.size
	case unix.S_IFCHR, unix.S_IFBLK:
		e.Devmajor = int64(unix.Major(n.rdev))
		e.Devminor = int64(unix.Minor(n.rdev))
	}
	return e
}

// lookup returns the node of the path p, or nil.
func (t tree) lookup(p string) *node {
	d := t[path.Dir(p)]
	if d == nil {
		return nil
	}
	name := path.Base(p)
	i := sort.Search(len(d.nodes), func(i int) bool { return d.nodes[i].name >= name })
	if i < len(d.nodes) && d.nodes[i].name == name {
		return &d.nodes[i]
	}
	return nil
}
