package buildcontext

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"sync"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"github.com/kiln-build/kiln/pkg/fsview"
)

// ignoreFileName is the ignore file at the root of the context.
const ignoreFileName = ".dockerignore"

// LoadIgnore reads the ignore file that applies to the Dockerfile at
// dockerfilePath (a path on disk, "" when the Dockerfile is not a file):
// "<dockerfilePath>.dockerignore" when it exists, else the .dockerignore at
// the root of the context. From then on FS hides what it excludes. Without
// an ignore file nothing is hidden.
//
// An ignore file inside the context is read like any COPY source (symlinks
// resolve inside the context); only a regular file of at most
// MaxIgnoreFileSize is read. A pattern that cannot be used is reported
// with its line.
func (c *Context) LoadIgnore(dockerfilePath string) error {
	data, file, err := c.readIgnore(dockerfilePath)
	if err != nil {
		return fmt.Errorf("build context %q: %w", c.spec, err)
	}
	c.fs = c.base
	if data == nil {
		return nil
	}
	patterns, err := parseIgnore(data)
	if err != nil {
		return fmt.Errorf("build context %q: ignore file %q: %w", c.spec, file, err)
	}
	if len(patterns) == 0 {
		return nil
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return fmt.Errorf("build context %q: ignore file %q: %w", c.spec, file, err)
	}
	c.fs = newIgnoreFS(c.base, pm)
	return nil
}

// readIgnore reads the ignore file that applies, or returns nil data when
// there is none.
func (c *Context) readIgnore(dockerfilePath string) ([]byte, string, error) {
	if dockerfilePath != "" {
		file := dockerfilePath + ignoreFileName
		data, err := c.readFile(file, MaxIgnoreFileSize)
		if err == nil {
			return data, file, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, "", fmt.Errorf("ignore file %q: %w", file, err)
		}
	}
	data, found, err := readInDir(c.dir, "/"+ignoreFileName, MaxIgnoreFileSize)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// A symlink leading nowhere inside the context: no ignore file.
		return nil, "", nil
	case err != nil:
		return nil, "", fmt.Errorf("ignore file %q: %w", ignoreFileName, err)
	case !found:
		return nil, "", nil
	}
	return data, ignoreFileName, nil
}

// parseIgnore returns the patterns of an ignore file, read by
// moby/patternmatcher's ignorefile, after checking that each compiles:
// patternmatcher itself only finds some bad patterns when it first matches
// a path with them, and then does not say which.
func parseIgnore(data []byte) ([]string, error) {
	patterns, err := ignorefile.ReadAll(bytes.NewReader(data))
	if errors.Is(err, bufio.ErrTooLong) {
		for i, line := range strings.Split(string(data), "\n") {
			if len(line) >= bufio.MaxScanTokenSize {
				return nil, fmt.Errorf("line %d is longer than %d bytes", i+1, bufio.MaxScanTokenSize-1)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	lines := patternLines(data)
	for i, p := range patterns {
		if err := checkPattern(p); err != nil {
			line := 0
			if i < len(lines) {
				line = lines[i]
			}
			return nil, fmt.Errorf("line %d: invalid pattern %q: %w", line, p, err)
		}
	}
	return patterns, nil
}

// checkPattern compiles one pattern the way patternmatcher will.
func checkPattern(p string) error {
	if _, err := patternmatcher.New([]string{p}); err != nil {
		return err
	}
	// An exception is compiled like the pattern it negates; matching a
	// path forces the compilation.
	pm, err := patternmatcher.New([]string{strings.TrimPrefix(p, "!")})
	if err == nil {
		_, err = pm.MatchesOrParentMatches("x")
	}
	return err
}

// patternLines returns the line number of each pattern ignorefile.ReadAll
// returns: the lines that are neither comments nor blank.
func patternLines(data []byte) []int {
	var out []int
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		out = append(out, i+1)
	}
	return out
}

// ignoreFS hides the files of a context that a .dockerignore excludes,
// giving the view Docker's builders get: an excluded file is absent; an
// excluded directory is absent unless an exception pattern re-includes
// something below it, in which case it holds only the re-included entries
// and the directories leading to them. Those directories stand in for the
// excluded ones as new directories (mode 0755, owned by root), the way the
// reference builder creates parents of re-included files.
//
// Like Docker's classic builder and buildah, an excluded directory is only
// searched when an exception pattern starts with its path ("!dir/sub/*"
// re-includes below "dir", "!*/sub" does not). Paths are matched with the
// results of their parent directories.
//
// The context must not change while the view is in use: results are cached.
type ignoreFS struct {
	base *fsview.DirFS
	// exceptionPrefixes are the exception patterns followed by "/": an
	// excluded directory is searched only if one starts with its path.
	exceptionPrefixes []string

	mu sync.Mutex // guards pm (it compiles patterns lazily) and dirs
	pm *patternmatcher.PatternMatcher
	// dirs caches the match results of directories, by relative path.
	dirs map[string]*dirMatch
}

type dirMatch struct {
	info     patternmatcher.MatchInfo
	excluded bool
	// visible is set for excluded directories once searched.
	visible *bool
}

func newIgnoreFS(base *fsview.DirFS, pm *patternmatcher.PatternMatcher) *ignoreFS {
	f := &ignoreFS{base: base, pm: pm, dirs: map[string]*dirMatch{}}
	for _, p := range pm.Patterns() {
		if p.Exclusion() {
			f.exceptionPrefixes = append(f.exceptionPrefixes, p.String()+"/")
		}
	}
	return f
}

// Lstat implements fsview.FS.
func (f *ignoreFS) Lstat(name string) (*fsview.Entry, error) {
	p, err := fsview.ResolveParent(fsview.LstatFunc(f.raw), name)
	if err != nil {
		return nil, err
	}
	return f.raw(p)
}

// ReadDir implements fsview.FS.
func (f *ignoreFS) ReadDir(name string) ([]*fsview.Entry, error) {
	dir, err := fsview.Resolve(fsview.LstatFunc(f.raw), name, true)
	if err != nil {
		return nil, err
	}
	if _, err := f.raw(dir); err != nil {
		return nil, err
	}
	entries, err := f.base.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := entries[:0]
	for _, e := range entries {
		v, err := f.view(e)
		if err != nil {
			return nil, err
		}
		if v != nil {
			out = append(out, v)
		}
	}
	return out, nil
}

// Open implements fsview.FS.
func (f *ignoreFS) Open(name string) (io.ReadCloser, error) {
	p, err := fsview.Resolve(fsview.LstatFunc(f.raw), name, true)
	if err != nil {
		return nil, err
	}
	if _, err := f.raw(p); err != nil {
		return nil, err
	}
	return f.base.Open(p)
}

// raw describes an already-resolved path, hiding excluded ones.
func (f *ignoreFS) raw(name string) (*fsview.Entry, error) {
	e, err := f.base.Lstat(name)
	if err != nil {
		return nil, err
	}
	v, err := f.view(e)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, &fs.PathError{Op: "lstat", Path: name, Err: fs.ErrNotExist}
	}
	return v, nil
}

// Excluded reports whether name exists in the context but the ignore file
// hides it, so that "not found" errors can say why.
func (f *ignoreFS) Excluded(name string) bool {
	if _, err := f.base.Lstat(name); err != nil {
		return false
	}
	_, err := f.Lstat(name)
	return errors.Is(err, fs.ErrNotExist)
}

// view returns e as the view shows it: nil when hidden, a new directory in
// place of an excluded one kept for re-included descendants.
func (f *ignoreFS) view(e *fsview.Entry) (*fsview.Entry, error) {
	rel := strings.TrimPrefix(e.Path, "/")
	if rel == "" {
		return e, nil
	}
	if ok, err := f.reachable(path.Dir(rel)); err != nil || !ok {
		return nil, err
	}
	if !e.IsDir() {
		excluded, err := f.match(rel)
		if err != nil || excluded {
			return nil, err
		}
		return e, nil
	}
	d, err := f.dir(rel)
	if err != nil {
		return nil, err
	}
	if !d.excluded {
		return e, nil
	}
	ok, err := f.holdsVisible(rel, d)
	if err != nil || !ok {
		return nil, err
	}
	return &fsview.Entry{Path: e.Path, Mode: fs.ModeDir | 0o755, ModTime: e.ModTime}, nil
}

// reachable reports whether the walk of the context gets into directory
// rel: it stops at an excluded directory no exception starts with.
func (f *ignoreFS) reachable(rel string) (bool, error) {
	for dir := rel; dir != "."; dir = path.Dir(dir) {
		d, err := f.dir(dir)
		if err != nil {
			return false, err
		}
		if d.excluded && !f.exceptionBelow(dir) {
			return false, nil
		}
	}
	return true, nil
}

// match reports whether the non-directory rel is excluded.
func (f *ignoreFS) match(rel string) (bool, error) {
	parent, err := f.parentInfo(rel)
	if err != nil {
		return false, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	excluded, _, err := f.pm.MatchesUsingParentResults(rel, parent)
	return excluded, err
}

// dir returns the match results of the directory rel.
func (f *ignoreFS) dir(rel string) (*dirMatch, error) {
	f.mu.Lock()
	d, ok := f.dirs[rel]
	f.mu.Unlock()
	if ok {
		return d, nil
	}
	parent, err := f.parentInfo(rel)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	excluded, info, err := f.pm.MatchesUsingParentResults(rel, parent)
	if err != nil {
		return nil, err
	}
	d = &dirMatch{info: info, excluded: excluded}
	f.dirs[rel] = d
	return d, nil
}

func (f *ignoreFS) parentInfo(rel string) (patternmatcher.MatchInfo, error) {
	parent := path.Dir(rel)
	if parent == "." {
		return patternmatcher.MatchInfo{}, nil
	}
	d, err := f.dir(parent)
	if err != nil {
		return patternmatcher.MatchInfo{}, err
	}
	return d.info, nil
}

// holdsVisible reports whether the excluded directory rel has a visible
// entry below it (which makes it visible too).
func (f *ignoreFS) holdsVisible(rel string, d *dirMatch) (bool, error) {
	f.mu.Lock()
	known := d.visible
	f.mu.Unlock()
	if known != nil {
		return *known, nil
	}
	found, err := f.searchVisible(rel)
	if err != nil {
		return false, err
	}
	f.mu.Lock()
	d.visible = &found
	f.mu.Unlock()
	return found, nil
}

func (f *ignoreFS) searchVisible(rel string) (bool, error) {
	if !f.exceptionBelow(rel) {
		return false, nil
	}
	entries, err := f.base.ReadDir("/" + rel)
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		v, err := f.view(e)
		if err != nil || v != nil {
			return v != nil, err
		}
	}
	return false, nil
}

// exceptionBelow reports whether an exception pattern starts with the
// directory rel, so that something below it may be re-included.
func (f *ignoreFS) exceptionBelow(rel string) bool {
	for _, p := range f.exceptionPrefixes {
		if strings.HasPrefix(p, rel+"/") {
			return true
		}
	}
	return false
}
