package fsview

import (
	"errors"
	"io"
	"io/fs"
	"path"
	"time"
)

// FS is a read-only container root filesystem.
//
// Every name is an absolute path inside the root ("/etc/passwd"). Symlinks in
// the parent components of a name are followed with chroot semantics (see
// Resolve); a symlink in the final component is not followed by Lstat and
// ReadDir's entries, and is followed by Open. Missing names return an error
// satisfying errors.Is(err, fs.ErrNotExist).
type FS interface {
	// Lstat describes name without following a final symlink.
	Lstat(name string) (*Entry, error)
	// ReadDir lists the directory name, sorted by entry name.
	ReadDir(name string) ([]*Entry, error)
	// Open opens the regular file name for reading, following symlinks.
	Open(name string) (io.ReadCloser, error)
}

// Entry describes one file of an FS.
type Entry struct {
	// Path is the clean absolute path of the entry inside the root.
	Path string
	// Mode holds the type (fs.ModeDir, fs.ModeSymlink, ...) and the
	// permission bits including fs.ModeSetuid, fs.ModeSetgid and fs.ModeSticky.
	Mode     fs.FileMode
	Size     int64
	UID, GID int
	ModTime  time.Time
	// Linkname is the target of a symlink.
	Linkname string
	// Xattrs holds extended attributes ("security.capability", "user.x").
	Xattrs map[string]string
	// Devmajor and Devminor are set for device nodes.
	Devmajor, Devminor int64
	// Inode identifies hard links: entries of one FS with the same non-empty
	// Inode are the same file. It is empty for files with a single link.
	Inode string
}

// Name returns the final element of the entry's path.
func (e *Entry) Name() string { return path.Base(e.Path) }

// IsDir reports whether the entry is a directory.
func (e *Entry) IsDir() bool { return e.Mode.IsDir() }

// IsSymlink reports whether the entry is a symbolic link.
func (e *Entry) IsSymlink() bool { return e.Mode&fs.ModeSymlink != 0 }

// IsRegular reports whether the entry is a regular file.
func (e *Entry) IsRegular() bool { return e.Mode.IsRegular() }

// Clone returns a deep copy of e.
func (e *Entry) Clone() *Entry {
	c := *e
	if e.Xattrs != nil {
		c.Xattrs = make(map[string]string, len(e.Xattrs))
		for k, v := range e.Xattrs {
			c.Xattrs[k] = v
		}
	}
	return &c
}

// ErrLoop is returned when resolving a path meets too many symlinks.
var ErrLoop = errors.New("too many levels of symbolic links")

// Clean returns name as a clean absolute path: "a/../b" becomes "/b".
func Clean(name string) string {
	return path.Clean("/" + name)
}
