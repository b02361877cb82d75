package fsview

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"syscall"
)

// MapFS is an in-memory FS, for tests and for small synthetic trees. Keys are
// paths ("/etc/passwd" or "etc/passwd"); missing parent directories are
// implied with mode 0755, owned by root.
type MapFS map[string]*MapFile

// MapFile is one file of a MapFS. Mode carries the type bits as in Entry.
type MapFile struct {
	Entry
	Data []byte
}

func (m MapFS) raw(name string) (*Entry, error) {
	name = Clean(name)
	if f, ok := m[name]; ok {
		return m.entry(name, f), nil
	}
	if f, ok := m[strings.TrimPrefix(name, "/")]; ok {
		return m.entry(name, f), nil
	}
	if name == "/" || m.hasChildren(name) {
		return &Entry{Path: name, Mode: fs.ModeDir | 0o755}, nil
	}
	// A parent that is not a directory makes the lookup fail like ENOTDIR.
	for p := path.Dir(name); p != "/"; p = path.Dir(p) {
		if e, err := m.raw(p); err == nil && !e.IsDir() {
			return nil, &fs.PathError{Op: "lstat", Path: name, Err: syscall.ENOTDIR}
		}
	}
	return nil, &fs.PathError{Op: "lstat", Path: name, Err: fs.ErrNotExist}
}

func (m MapFS) entry(name string, f *MapFile) *Entry {
	e := f.Entry.Clone()
	e.Path = name
	if e.Mode.IsRegular() {
		e.Size = int64(len(f.Data))
	}
	return e
}

func (m MapFS) hasChildren(dir string) bool {
	for k := range m {
		if strings.HasPrefix(Clean(k), dir+"/") {
			return true
		}
	}
	return false
}

// Lstat implements FS.
func (m MapFS) Lstat(name string) (*Entry, error) {
	p, err := ResolveParent(LstatFunc(m.raw), name)
	if err != nil {
		return nil, err
	}
	return m.raw(p)
}

// ReadDir implements FS.
func (m MapFS) ReadDir(name string) ([]*Entry, error) {
	dir, err := Resolve(LstatFunc(m.raw), name, true)
	if err != nil {
		return nil, err
	}
	d, err := m.raw(dir)
	if err != nil {
		return nil, err
	}
	if !d.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: syscall.ENOTDIR}
	}
	seen := map[string]bool{}
	var out []*Entry
	for k := range m {
		k = Clean(k)
		if !strings.HasPrefix(k, dir+"/") && !(dir == "/" && k != "/") {
			continue
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(k, dir), "/")
		child := path.Join(dir, strings.SplitN(rel, "/", 2)[0])
		if seen[child] {
			continue
		}
		seen[child] = true
		e, err := m.raw(child)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// Open implements FS.
func (m MapFS) Open(name string) (io.ReadCloser, error) {
	p, err := Resolve(LstatFunc(m.raw), name, true)
	if err != nil {
		return nil, err
	}
	e, err := m.raw(p)
	if err != nil {
		return nil, err
	}
	if !e.IsRegular() {
		return nil, fmt.Errorf("open %q: not a regular file", name)
	}
	f, ok := m[p]
	if !ok {
		f = m[strings.TrimPrefix(p, "/")]
	}
	return io.NopCloser(bytes.NewReader(f.Data)), nil
}
