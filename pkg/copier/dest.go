package copier

import (
	"fmt"
	"path"
	"strings"

	"github.com/kiln-build/kiln/pkg/fsview"
)

// destination is where the instruction copies to.
type destination struct {
	path string // absolute and clean, not resolved
	// dir is set when the destination must be a directory: a trailing "/",
	// "." or several sources.
	dir bool
}

func newDestination(req *Request) destination {
	d := req.Dest
	if d == "" {
		d = "."
	}
	if !strings.HasPrefix(d, "/") {
		d = req.Workdir + "/" + d
	}
	dir := strings.HasSuffix(d, "/") || strings.HasSuffix(d, "/.") || strings.HasSuffix(d, "/..") ||
		len(req.Sources)+len(req.Heredocs) > 1
	return destination{path: fsview.Clean(d), dir: dir}
}

// destDir resolves the destination as a directory, creating it and its
// missing parents.
func (c *copier) destDir() (string, error) {
	p, err := c.dst.resolve(c.dest.path, true)
	if err == nil {
		err = c.ensureDir(p)
	}
	if err != nil {
		return "", fmt.Errorf("destination %q: %w", c.req.Dest, err)
	}
	return p, nil
}

// destIsDir reports whether a non-directory source goes inside the
// destination rather than replace it.
func (c *copier) destIsDir() (bool, error) {
	if c.dest.dir {
		return true, nil
	}
	p, err := c.dst.resolve(c.dest.path, true)
	if err != nil {
		return false, fmt.Errorf("destination %q: %w", c.req.Dest, err)
	}
	e, err := c.dst.find(p)
	if err != nil {
		return false, fmt.Errorf("destination %q: %w", c.req.Dest, err)
	}
	return e != nil && e.IsDir(), nil
}

// fileTarget returns where a non-directory source named base lands: inside
// the destination when it is a directory, else at the destination itself
// (a symlink there is replaced, not followed).
func (c *copier) fileTarget(base string) (string, error) {
	inside, err := c.destIsDir()
	if err != nil {
		return "", err
	}
	if inside {
		dir, err := c.destDir()
		if err != nil {
			return "", err
		}
		return path.Join(dir, base), nil
	}
	parent, err := c.dst.resolve(path.Dir(c.dest.path), true)
	if err != nil {
		return "", fmt.Errorf("destination %q: %w", c.req.Dest, err)
	}
	return path.Join(parent, path.Base(c.dest.path)), nil
}
