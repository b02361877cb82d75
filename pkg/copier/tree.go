package copier

import (
	"errors"
	"io/fs"
	"path"
	"syscall"

	"github.com/kiln-build/kiln/pkg/fsview"
)

// tree is the destination as the layer being written will leave it: the
// stage's filesystem (base, nil with --link) overlaid with the entries
// written so far. Later sources of the same instruction must see what
// earlier ones created: the directory a first file made, the symlink a
// tree copied.
type tree struct {
	base    fsview.FS
	written map[string]*fsview.Entry // by absolute, resolved path
}

func newTree(base fsview.FS) *tree {
	return &tree{base: base, written: map[string]*fsview.Entry{}}
}

// lstat describes the resolved path p without following a final symlink.
func (t *tree) lstat(p string) (*fsview.Entry, error) {
	if e, ok := t.written[p]; ok {
		return e, nil
	}
	// The nearest written ancestor decides: below a written non-directory
	// nothing exists; below a written directory the base may have more.
	for d := path.Dir(p); d != "/"; d = path.Dir(d) {
		if e, ok := t.written[d]; ok {
			if !e.IsDir() {
				return nil, &fs.PathError{Op: "lstat", Path: p, Err: syscall.ENOTDIR}
			}
			break
		}
	}
	if t.base == nil {
		return nil, &fs.PathError{Op: "lstat", Path: p, Err: fs.ErrNotExist}
	}
	return t.base.Lstat(p)
}

// resolve follows symlinks in p with chroot semantics (see fsview.Resolve).
func (t *tree) resolve(p string, followFinal bool) (string, error) {
	return fsview.Resolve(fsview.LstatFunc(t.lstat), p, followFinal)
}

// find is lstat with a missing path reported as nil, nil.
func (t *tree) find(p string) (*fsview.Entry, error) {
	e, err := t.lstat(p)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, nil
	}
	return e, err
}
