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

// hasMeta reports whether a source has glob metacharacters, as Docker
// decides it: a backslash escapes the next character. A source without any is
// a plain path, used as written.
func hasMeta(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '*', '?', '[':
			return true
		}
	}
	return false
}

// pattern matches slash-separated paths relative to a directory, one
// component at a time with path.Match rules. With doubleStar, a "**"
// component matches any number of components (COPY --parents); otherwise it
// is just a "*".
type pattern struct {
	parts      []string
	doubleStar bool
}

func newPattern(p string, doubleStar bool) (pattern, error) {
	parts := strings.Split(p, "/")
	for _, part := range parts {
		if _, err := path.Match(part, ""); err != nil {
			return pattern{}, fmt.Errorf("invalid pattern %q: %w", p, err)
		}
	}
	return pattern{parts: parts, doubleStar: doubleStar}, nil
}

// match reports whether the path made of name's components matches.
func (p pattern) match(name []string) bool { return p.matchFrom(p.parts, name, false) }

// mayMatchBelow reports whether a path below the directory dir could match,
// so that a walk needs to enter it.
func (p pattern) mayMatchBelow(dir []string) bool { return p.matchFrom(p.parts, dir, true) }

func (p pattern) matchFrom(parts, name []string, prefix bool) bool {
	for len(parts) > 0 {
		if p.doubleStar && parts[0] == "**" {
			// Either "**" matches nothing more, or it absorbs one component.
			if p.matchFrom(parts[1:], name, prefix) {
				return true
			}
			if len(name) == 0 {
				return prefix
			}
			name = name[1:]
			continue
		}
		if len(name) == 0 {
			return prefix
		}
		if ok, _ := path.Match(parts[0], name[0]); !ok {
			return false
		}
		parts, name = parts[1:], name[1:]
	}
	return !prefix && len(name) == 0
}

// globMatch is a path found by glob.
type globMatch struct {
	path string // absolute path in the FS
	rel  string // path relative to the directory the pattern is relative to
}

// glob returns the paths of fsys below dir matching pat, sorted. Like
// Docker's walk, it does not enter symlinked directories after the first
// wildcard, and it does not look inside a matching directory (the directory
// is copied whole).
func glob(fsys fsview.FS, dir string, pat pattern) ([]globMatch, error) {
	// Components before the first wildcard are a plain path: no need to list
	// every directory on the way.
	lit := 0
	for lit < len(pat.parts)-1 && !hasMeta(pat.parts[lit]) {
		lit++
	}
	base := path.Join(append([]string{dir}, pat.parts[:lit]...)...)
	rest := pattern{parts: pat.parts[lit:], doubleStar: pat.doubleStar}
	var out []globMatch
	var walk func(d string, rel []string) error
	walk = func(d string, rel []string) error {
		ents, err := fsys.ReadDir(d)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				return nil
			}
			return err
		}
		for _, e := range ents {
			name := append(rel[:len(rel):len(rel)], e.Name())
			p := path.Join(d, e.Name())
			switch {
			case rest.match(name):
				out = append(out, globMatch{path: p, rel: path.Join(append(pat.parts[:lit:lit], name...)...)})
			case e.IsDir() && rest.mayMatchBelow(name):
				if err := walk(p, name); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return out, walk(base, nil)
}
