package copier

import (
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/kiln-build/kiln/pkg/fsview"
)

// copyLocal copies one item of the source FS and returns where it landed.
func (c *copier) copyLocal(s *localSource) (string, error) {
	c.links = map[string]string{}
	if c.req.Parents {
		return c.copyKeepingParents(s)
	}
	switch {
	case s.entry.IsDir():
		// A directory's contents are copied, not the directory itself.
		dir, err := c.destDir()
		if err != nil {
			return "", err
		}
		return dir, c.copyTree(s.path, "", dir)
	case c.req.Add && s.entry.IsRegular():
		if dir, ok, err := c.extract(s); ok || err != nil {
			return dir, err
		}
	}
	target, err := c.fileTarget(s.base)
	if err != nil {
		return "", err
	}
	return target, c.copyNonDir(target, s.entry)
}

// copyKeepingParents copies a --parents item to its path under the
// destination; the directories on the way are copied from the source too.
func (c *copier) copyKeepingParents(s *localSource) (string, error) {
	dir, err := c.destDir()
	if err != nil {
		return "", err
	}
	if s.rel == "" {
		return dir, c.copyTree(s.path, "", dir)
	}
	root := fsview.Clean(strings.TrimSuffix(s.path, s.rel))
	parts := strings.Split(s.rel, "/")
	for i := range parts[:len(parts)-1] {
		src := path.Join(root, path.Join(parts[:i+1]...))
		if d, ok := c.parentDirs[src]; ok {
			dir = d
			continue
		}
		e, err := fsview.Stat(c.req.Src, src)
		if err != nil {
			return "", fmt.Errorf("%q: %w", src, err)
		}
		if dir, err = c.putDir(path.Join(dir, parts[i]), c.adopt(e)); err != nil {
			return "", err
		}
		c.parentDirs[src] = dir
	}
	target := path.Join(dir, parts[len(parts)-1])
	if !s.entry.IsDir() {
		return target, c.copyNonDir(target, s.entry)
	}
	d, err := c.putDir(target, c.adopt(s.entry))
	if err != nil {
		return "", err
	}
	c.parentDirs[s.path] = d
	return d, c.copyTree(s.path, s.rel, d)
}

// copyTree copies the contents of the source directory src into the
// resolved destination directory dst. rel is src's path as --exclude
// patterns see it.
func (c *copier) copyTree(src, rel, dst string) error {
	ents, err := c.req.Src.ReadDir(src)
	if err != nil {
		return fmt.Errorf("reading %q: %w", src, err)
	}
	for _, e := range ents {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		if e.Mode&fs.ModeSocket != 0 {
			continue // a socket cannot be stored in a layer, Docker skips them too
		}
		r := path.Join(rel, e.Name())
		skip, err := c.excluded(r, e.IsDir())
		if err != nil {
			return err
		}
		if skip {
			continue
		}
		target := path.Join(dst, e.Name())
		if !e.IsDir() {
			if err := c.copyNonDir(target, e); err != nil {
				return err
			}
			continue
		}
		d, err := c.putDir(target, c.adopt(e))
		if err != nil {
			return err
		}
		if err := c.copyTree(e.Path, r, d); err != nil {
			return err
		}
	}
	return nil
}

// copyNonDir copies the source entry e (a file, symlink or device) to
// target, whose parent is resolved.
func (c *copier) copyNonDir(target string, e *fsview.Entry) error {
	if e.Mode&fs.ModeSocket != 0 {
		return fmt.Errorf("%q is a socket, which cannot be copied", e.Path)
	}
	n := c.adopt(e)
	if !e.IsRegular() {
		return c.putNonDir(target, n, nil)
	}
	if first, ok := c.links[e.Inode]; ok && e.Inode != "" {
		return c.putLink(target, n, first)
	}
	rc, err := c.req.Src.Open(e.Path)
	if err != nil {
		return fmt.Errorf("%q: %w", e.Path, err)
	}
	defer rc.Close()
	if err := c.putNonDir(target, n, rc); err != nil {
		return err
	}
	if e.Inode != "" {
		c.links[e.Inode] = n.Path
	}
	return nil
}
