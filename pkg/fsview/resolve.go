package fsview

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"syscall"
)

// Lstater is the part of FS that Resolve needs. Implementations of FS pass
// their raw lookup (names already resolved) to avoid resolving twice.
type Lstater interface {
	Lstat(name string) (*Entry, error)
}

// LstatFunc adapts a function to Lstater.
type LstatFunc func(name string) (*Entry, error)

// Lstat calls f.
func (f LstatFunc) Lstat(name string) (*Entry, error) { return f(name) }

// maxSymlinks matches Linux's limit on symlinks followed in one lookup.
const maxSymlinks = 40

// Resolve returns the real path of name inside fsys, following symlinks the
// way the kernel does for a process chrooted at the root: absolute targets
// start again at the root and ".." never climbs above it. The final component
// is followed only when followFinal is set.
//
// A missing component ends the walk without an error: the result is the
// resolved prefix joined with the remaining components, which is where a
// builder creating that path would create it (COPY into a dangling symlink
// creates the link's target).
func Resolve(fsys Lstater, name string, followFinal bool) (string, error) {
	// A trailing slash makes the kernel follow the final component too.
	if strings.HasSuffix(name, "/") {
		followFinal = true
	}
	rest := splitPath(name)
	resolved := "/"
	missing := 0 // components appended below the first missing one
	hops := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		if c == ".." {
			resolved = path.Dir(resolved)
			if missing > 0 {
				missing--
			}
			continue
		}
		candidate := path.Join(resolved, c)
		if missing > 0 {
			resolved, missing = candidate, missing+1
			continue
		}
		e, err := fsys.Lstat(candidate)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
				resolved, missing = candidate, 1
				continue
			}
			return "", err
		}
		if e.IsSymlink() && (len(rest) > 0 || followFinal) {
			hops++
			if hops > maxSymlinks {
				return "", fmt.Errorf("resolving %q: %w", name, ErrLoop)
			}
			target := e.Linkname
			if strings.HasPrefix(target, "/") {
				resolved = "/"
			}
			rest = append(splitPath(target), rest...)
			continue
		}
		resolved = candidate
	}
	return resolved, nil
}

// ResolveParent resolves every component of name but the last, which is
// returned unresolved: the path Lstat would describe.
func ResolveParent(fsys Lstater, name string) (string, error) {
	name = Clean(name)
	if name == "/" {
		return "/", nil
	}
	dir, err := Resolve(fsys, path.Dir(name), true)
	if err != nil {
		return "", err
	}
	return path.Join(dir, path.Base(name)), nil
}

// Stat describes name, following symlinks in every component.
func Stat(fsys FS, name string) (*Entry, error) {
	p, err := Resolve(fsys, name, true)
	if err != nil {
		return nil, err
	}
	return fsys.Lstat(p)
}

// SplitPath returns the components of a path, without empty and "." ones.
func SplitPath(p string) []string { return splitPath(p) }

func splitPath(p string) []string {
	parts := strings.Split(p, "/")
	out := parts[:0]
	for _, s := range parts {
		if s != "" && s != "." {
			out = append(out, s)
		}
	}
	return out
}

// isNotDir reports whether err means a parent component is not a directory.
func isNotDir(err error) bool { return errors.Is(err, syscall.ENOTDIR) }
