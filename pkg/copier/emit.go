package copier

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/kiln-build/kiln/pkg/fsview"
)

// whiteoutPrefix marks deletions in OCI layers: a copied file with such a
// name would delete its sibling when the layer is applied.
const whiteoutPrefix = ".wh."

// emit writes e (Path absolute and resolved) to the layer and records it in
// the destination tree. body is read for regular files. copied is false for
// the existing parents written for consistency: they are not part of what
// the instruction copies (counts, digest).
func (c *copier) emit(e *fsview.Entry, body io.Reader, copied bool) error {
	return c.write(e, e.Header(), body, copied)
}

// emitLink writes e as a hard link to the already written path first.
func (c *copier) emitLink(e *fsview.Entry, first string) error {
	h := e.Header()
	h.Typeflag, h.Linkname, h.Size = tar.TypeLink, strings.TrimPrefix(first, "/"), 0
	return c.write(e, h, nil, true)
}

func (c *copier) write(e *fsview.Entry, h *tar.Header, body io.Reader, copied bool) error {
	if strings.HasPrefix(path.Base(e.Path), whiteoutPrefix) {
		return fmt.Errorf("%q: names starting with %q cannot be stored in an image layer, they mark deletions", e.Path, whiteoutPrefix)
	}
	if err := c.tw.WriteHeader(h); err != nil {
		return fmt.Errorf("writing %q to the layer: %w", e.Path, err)
	}
	c.res.Entries++
	c.dst.written[e.Path] = e
	if !copied {
		return nil
	}
	fmt.Fprintf(c.sum, "%c %q %o %d:%d %q %d %d,%d\n", h.Typeflag, h.Name, h.Mode, h.Uid, h.Gid, h.Linkname, h.Size, h.Devmajor, h.Devminor)
	switch h.Typeflag {
	case tar.TypeReg:
		c.res.Files++
		n, err := io.CopyN(io.MultiWriter(c.tw, c.sum), body, h.Size)
		c.res.Bytes += n
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%q: source shrank while being copied (%d of %d bytes)", e.Path, n, h.Size)
		}
		if err != nil {
			return fmt.Errorf("writing %q to the layer: %w", e.Path, err)
		}
	case tar.TypeLink:
		c.res.Files++
	}
	return nil
}

// ensureDir makes the resolved path p a directory of the layer: an existing
// one is written with its current metadata (so that the layer extracts the
// same on any base), a missing one is created 0755 with the default owner.
func (c *copier) ensureDir(p string) error {
	if p == "/" {
		return nil
	}
	if e, ok := c.dst.written[p]; ok {
		if !e.IsDir() {
			return fmt.Errorf("%q is not a directory", p)
		}
		return nil
	}
	if err := c.ensureDir(path.Dir(p)); err != nil {
		return err
	}
	e, err := c.dst.find(p)
	switch {
	case err != nil:
		return err
	case e == nil:
		return c.emit(c.newDir(p), nil, true)
	case !e.IsDir():
		return fmt.Errorf("%q is not a directory", p)
	}
	e = e.Clone()
	e.Path = p
	return c.emit(e, nil, false)
}

// newDir describes a directory the copy creates.
func (c *copier) newDir(p string) *fsview.Entry {
	uid, gid := c.owner()
	return &fsview.Entry{Path: p, Mode: fs.ModeDir | 0o755, UID: uid, GID: gid, ModTime: c.now}
}

// putDir writes the directory e at target (parent resolved, final component
// not) and returns the directory its contents go to. An existing directory
// takes e's metadata; a symlink to a directory is followed and left as it
// is, so that copying a tree onto /bin of a merged-/usr system fills
// /usr/bin instead of replacing the link.
func (c *copier) putDir(target string, e *fsview.Entry) (string, error) {
	if err := c.ensureDir(path.Dir(target)); err != nil {
		return "", err
	}
	cur, err := c.dst.find(target)
	switch {
	case err != nil:
		return "", err
	case cur == nil || cur.IsDir():
		e.Path = target
		return target, c.emit(e, nil, true)
	case cur.IsSymlink():
		r, err := c.dst.resolve(target, true)
		if err != nil {
			return "", err
		}
		if st, err := c.dst.find(r); err != nil || st == nil || !st.IsDir() {
			return "", fmt.Errorf("cannot copy a directory to %q: it is a symlink to %q, which is not a directory", target, cur.Linkname)
		}
		return r, c.ensureDir(r)
	default:
		return "", fmt.Errorf("cannot copy a directory over the file %q", target)
	}
}

// putNonDir writes e (anything but a directory) at target, parent resolved,
// replacing a file or symlink that is there. body is read for a regular file.
func (c *copier) putNonDir(target string, e *fsview.Entry, body io.Reader) error {
	if err := c.checkNonDirTarget(target); err != nil {
		return err
	}
	e.Path = target
	return c.emit(e, body, true)
}

// putLink writes e at target as a hard link to first.
func (c *copier) putLink(target string, e *fsview.Entry, first string) error {
	if err := c.checkNonDirTarget(target); err != nil {
		return err
	}
	e.Path = target
	return c.emitLink(e, first)
}

func (c *copier) checkNonDirTarget(target string) error {
	if err := c.ensureDir(path.Dir(target)); err != nil {
		return err
	}
	cur, err := c.dst.find(target)
	if err != nil {
		return err
	}
	if cur != nil && cur.IsDir() {
		return fmt.Errorf("cannot replace the directory %q with a file", target)
	}
	return nil
}
