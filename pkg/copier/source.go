package copier

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"syscall"

	"github.com/kiln-build/kiln/pkg/fsview"
)

// localSource is one file or directory of the source FS to copy.
type localSource struct {
	// path is where it is in the source FS; a symlink named by the source
	// (or matched by its glob) is followed, except with --parents.
	path  string
	entry *fsview.Entry
	// base names a non-directory at its destination: the last component of
	// the path as written or matched, before following a symlink.
	base string
	// rel is the path --exclude patterns see for the item itself (relative
	// to the directory the glob starts from; empty for a plain path, which
	// is never excluded) and, with --parents, the path kept under dest.
	rel string
}

// expand resolves one source as written to the items it names.
func (c *copier) expand(src string) ([]*localSource, error) {
	if c.req.Src == nil {
		return nil, fmt.Errorf("%q: no source filesystem to copy from", src)
	}
	if c.req.Parents {
		return c.expandParents(src)
	}
	p := fsview.Clean(src)
	if !hasMeta(src) {
		e, err := fsview.Stat(c.req.Src, p)
		if err != nil {
			return nil, c.notFound(src, err)
		}
		return []*localSource{{path: e.Path, entry: e, base: path.Base(p)}}, nil
	}
	pat, err := newPattern(strings.TrimPrefix(p, "/"), false)
	if err != nil {
		return nil, err
	}
	matches, err := glob(c.req.Src, "/", pat)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", src, err)
	}
	if len(matches) == 0 {
		return nil, c.noMatch(src)
	}
	return c.fromMatches(matches, true)
}

// expandParents resolves a --parents source: the part after an optional
// "/./" pivot (the whole source without one) is kept under the destination.
// Symlinks are copied as they are, and "**" matches any number of
// directories.
func (c *copier) expandParents(src string) ([]*localSource, error) {
	root, rest, ok := strings.Cut(src, "/./")
	if !ok {
		root, rest = "/", src
	}
	root = fsview.Clean(root)
	rest = strings.TrimPrefix(fsview.Clean(rest), "/")
	if !hasMeta(rest) {
		p := path.Join(root, rest)
		e, err := c.req.Src.Lstat(p)
		if err != nil {
			return nil, c.notFound(src, err)
		}
		return []*localSource{{path: p, entry: e, base: path.Base(p), rel: rest}}, nil
	}
	pat, err := newPattern(rest, true)
	if err != nil {
		return nil, err
	}
	matches, err := glob(c.req.Src, root, pat)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", src, err)
	}
	if len(matches) == 0 {
		return nil, c.noMatch(src)
	}
	return c.fromMatches(matches, false)
}

// fromMatches turns glob matches into sources, leaving out the excluded
// ones. follow says whether a matched symlink is followed (a glob source)
// or copied as a link (--parents).
func (c *copier) fromMatches(matches []globMatch, follow bool) ([]*localSource, error) {
	var out []*localSource
	for _, m := range matches {
		lookup := c.req.Src.Lstat
		if follow {
			lookup = func(p string) (*fsview.Entry, error) { return fsview.Stat(c.req.Src, p) }
		}
		e, err := lookup(m.path)
		if err != nil {
			return nil, c.notFound(m.rel, err)
		}
		skip, err := c.excluded(m.rel, e.IsDir())
		if err != nil {
			return nil, err
		}
		if skip {
			continue
		}
		// A followed link is copied from where it leads, named as matched.
		out = append(out, &localSource{path: e.Path, entry: e, base: path.Base(m.path), rel: m.rel})
	}
	return out, nil
}

// where names the source FS in messages.
func (c *copier) where() string {
	if c.req.FromContext {
		return " in the build context"
	}
	return ""
}

func (c *copier) notFound(src string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return notFoundError(fmt.Sprintf("%q: no such file or directory%s", src, c.where()))
	}
	return fmt.Errorf("%q: %w", src, err)
}

func (c *copier) noMatch(src string) error {
	return notFoundError(fmt.Sprintf("%q: no file matches the pattern%s", src, c.where()))
}

// notFoundError is a missing source; it satisfies errors.Is(err,
// fs.ErrNotExist).
type notFoundError string

func (e notFoundError) Error() string        { return string(e) }
func (e notFoundError) Is(target error) bool { return target == fs.ErrNotExist }
