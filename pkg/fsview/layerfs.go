package fsview

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"
)

// OCI whiteout markers.
const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// LayerFS is the flattened view of image layers, built from their tar
// headers with OCI whiteout semantics. Nothing is extracted: file content is
// read from the layer stream on demand.
//
// A LayerFS is safe for concurrent readers; Append must not race with them.
type LayerFS struct {
	spoolDir string
	headers  HeaderCache

	mu      sync.Mutex
	layers  []*layerData
	root    *node
	indexed int // layers folded into the tree
}

// node is one path of the flattened tree.
type node struct {
	entry    *Entry
	children map[string]*node
	layer    int    // layer that last wrote this path
	data     string // tar name holding the content (a hard link's target)
	dataIn   int    // layer holding data
}

// layerData is one layer and, once content has been read twice from it, a
// spooled uncompressed copy with the offset of every file's content.
type layerData struct {
	layer   v1.Layer
	name    string
	entries []*tar.Header

	mu      sync.Mutex
	reads   int
	spool   *os.File
	offsets map[string]int64
	sizes   map[string]int64
}

// LayerFSOption configures a LayerFS.
type LayerFSOption func(*LayerFS)

// HeaderCache keeps the tar headers of layers beyond one build, so that
// the view of a layer seen before needs no decompression of it. A cache
// that fails answers "not kept": it never fails a view.
type HeaderCache interface {
	// Headers returns the kept headers of l, if any.
	Headers(ctx context.Context, l v1.Layer) ([]*tar.Header, bool)
	// Keep is given the headers just read from l.
	Keep(ctx context.Context, l v1.Layer, headers []*tar.Header)
}

// WithHeaderCache looks layers' headers up in c before reading the layers,
// and gives c the headers of the layers it had to read.
func WithHeaderCache(c HeaderCache) LayerFSOption { return func(l *LayerFS) { l.headers = c } }

// WithSpoolDir sets where uncompressed copies of layers are kept when many
// files are read from them (default: the system temp dir).
func WithSpoolDir(dir string) LayerFSOption { return func(l *LayerFS) { l.spoolDir = dir } }

// NewLayerFS returns the view of layers, lowest first. Layers are indexed on
// first use.
func NewLayerFS(layers []v1.Layer, opts ...LayerFSOption) *LayerFS {
	l := &LayerFS{root: newDirNode("/")}
	for _, o := range opts {
		o(l)
	}
	for _, ly := range layers {
		l.layers = append(l.layers, &layerData{layer: ly, name: layerName(ly)})
	}
	return l
}

func layerName(ly v1.Layer) string {
	if d, err := ly.Digest(); err == nil {
		return d.String()
	}
	return "layer"
}

func newDirNode(p string) *node {
	return &node{entry: &Entry{Path: p, Mode: fs.ModeDir | 0o755}, children: map[string]*node{}, layer: -1}
}

// Append adds layers on top. The caller must not use the LayerFS from other
// goroutines meanwhile.
func (l *LayerFS) Append(layers ...v1.Layer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ly := range layers {
		l.layers = append(l.layers, &layerData{layer: ly, name: layerName(ly)})
	}
}

// Clone returns an independent view over the same layers, so that two stages
// continuing from one state can each append their own layers.
func (l *LayerFS) Clone() *LayerFS {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := &LayerFS{spoolDir: l.spoolDir, headers: l.headers, layers: append([]*layerData(nil), l.layers...), indexed: l.indexed}
	c.root = cloneNode(l.root)
	return c
}

func cloneNode(n *node) *node {
	c := *n
	c.entry = n.entry.Clone()
	if n.children != nil {
		c.children = make(map[string]*node, len(n.children))
		for k, v := range n.children {
			c.children[k] = cloneNode(v)
		}
	}
	return &c
}

// Index reads the headers of every layer not yet indexed (concurrently) and
// folds them into the tree. Lstat, ReadDir and Open call it as needed; call
// it directly to control when the cost is paid.
func (l *LayerFS) Index(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.indexLocked(ctx)
}

func (l *LayerFS) indexLocked(ctx context.Context) error {
	pending := l.layers[l.indexed:]
	if len(pending) == 0 {
		return nil
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, ld := range pending {
		if ld.entries != nil {
			continue
		}
		g.Go(func() error { return ld.readHeaders(ctx, l.headers) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for i := l.indexed; i < len(l.layers); i++ {
		if err := l.fold(i); err != nil {
			return err
		}
	}
	l.indexed = len(l.layers)
	return nil
}

func (ld *layerData) readHeaders(ctx context.Context, hc HeaderCache) error {
	if hc != nil {
		if entries, ok := hc.Headers(ctx, ld.layer); ok {
			ld.entries = entries
			return nil
		}
	}
	rc, err := ld.layer.Uncompressed()
	if err != nil {
		return fmt.Errorf("layer %s: %w", ld.name, err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	entries := []*tar.Header{}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading layer %s: %w", ld.name, err)
		}
		entries = append(entries, h)
	}
	ld.entries = entries
	if hc != nil {
		hc.Keep(ctx, ld.layer, entries)
	}
	return nil
}

// fold applies layer i's entries to the tree.
func (l *LayerFS) fold(i int) error {
	ld := l.layers[i]
	for _, h := range ld.entries {
		p := Clean(h.Name)
		if p == "/" {
			if h.Typeflag == tar.TypeDir {
				e := EntryFromHeader(h)
				l.root.entry, l.root.layer = e, i
			}
			continue
		}
		dir, base := path.Split(p)
		parent := l.mkdirs(path.Clean(dir), i)
		switch {
		case base == whiteoutOpaque:
			pruneLower(parent, i)
		case strings.HasPrefix(base, whiteoutPrefix):
			delete(parent.children, strings.TrimPrefix(base, whiteoutPrefix))
		default:
			e := EntryFromHeader(h)
			n := &node{entry: e, layer: i, data: h.Name, dataIn: i}
			if h.Typeflag == tar.TypeLink {
				target := l.lookupNode(e.Inode)
				if target == nil || !target.entry.IsRegular() {
					return fmt.Errorf("layer %s: entry %q: hard link to missing file %q", ld.name, h.Name, h.Linkname)
				}
				e.Size = target.entry.Size
				e.Mode = target.entry.Mode
				e.UID, e.GID, e.ModTime = target.entry.UID, target.entry.GID, target.entry.ModTime
				e.Xattrs = target.entry.Xattrs
				if target.entry.Inode != "" {
					e.Inode = target.entry.Inode
				}
				target.entry.Inode = e.Inode
				n.data, n.dataIn = target.data, target.dataIn
			}
			if old := parent.children[base]; old != nil && old.entry.IsDir() && e.IsDir() {
				old.entry, old.layer = e, i // metadata update, content kept
				continue
			}
			if e.IsDir() {
				n.children = map[string]*node{}
			}
			parent.children[base] = n
		}
	}
	return nil
}

// pruneLower removes what layers below i put under dir: an opaque directory
// hides the whole lower subtree, but not what its own layer added.
func pruneLower(dir *node, i int) {
	for name, c := range dir.children {
		switch {
		case c.layer < i:
			delete(dir.children, name)
		case c.children != nil:
			pruneLower(c, i)
		}
	}
}

// mkdirs returns the directory node for a clean path, creating implied
// directories. A non-directory in the way is replaced, as extraction would.
func (l *LayerFS) mkdirs(p string, layer int) *node {
	n := l.root
	for _, c := range splitPath(p) {
		child := n.children[c]
		if child == nil || !child.entry.IsDir() {
			child = newDirNode(path.Join(n.entry.Path, c))
			child.layer = layer
			n.children[c] = child
		}
		n = child
	}
	return n
}

// lookupNode finds a clean path without following symlinks anywhere.
func (l *LayerFS) lookupNode(p string) *node {
	n := l.root
	for _, c := range splitPath(p) {
		if n.children == nil {
			return nil
		}
		n = n.children[c]
		if n == nil {
			return nil
		}
	}
	return n
}

func (l *LayerFS) ensureIndexed() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.indexLocked(context.Background())
}

// raw looks up an already-resolved path.
func (l *LayerFS) raw(name string) (*Entry, error) {
	n, err := l.rawNode(name)
	if err != nil {
		return nil, err
	}
	return n.entry.Clone(), nil
}

func (l *LayerFS) rawNode(name string) (*node, error) {
	name = Clean(name)
	n := l.root
	for _, c := range splitPath(name) {
		if !n.entry.IsDir() {
			return nil, &fs.PathError{Op: "lstat", Path: name, Err: syscall.ENOTDIR}
		}
		n = n.children[c]
		if n == nil {
			return nil, &fs.PathError{Op: "lstat", Path: name, Err: fs.ErrNotExist}
		}
	}
	return n, nil
}

// Lstat implements FS.
func (l *LayerFS) Lstat(name string) (*Entry, error) {
	if err := l.ensureIndexed(); err != nil {
		return nil, err
	}
	p, err := ResolveParent(LstatFunc(l.raw), name)
	if err != nil {
		return nil, err
	}
	e, err := l.raw(p)
	if err != nil {
		return nil, err
	}
	e.Path = p
	return e, nil
}

// ReadDir implements FS.
func (l *LayerFS) ReadDir(name string) ([]*Entry, error) {
	if err := l.ensureIndexed(); err != nil {
		return nil, err
	}
	dir, err := Resolve(LstatFunc(l.raw), name, true)
	if err != nil {
		return nil, err
	}
	n, err := l.rawNode(dir)
	if err != nil {
		return nil, err
	}
	if !n.entry.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: syscall.ENOTDIR}
	}
	out := make([]*Entry, 0, len(n.children))
	for _, c := range n.children {
		e := c.entry.Clone()
		e.Path = path.Join(dir, path.Base(c.entry.Path))
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// Open implements FS.
func (l *LayerFS) Open(name string) (io.ReadCloser, error) {
	if err := l.ensureIndexed(); err != nil {
		return nil, err
	}
	p, err := Resolve(LstatFunc(l.raw), name, true)
	if err != nil {
		return nil, err
	}
	n, err := l.rawNode(p)
	if err != nil {
		return nil, err
	}
	if !n.entry.IsRegular() {
		return nil, fmt.Errorf("open %q: not a regular file", name)
	}
	l.mu.Lock()
	ld := l.layers[n.dataIn]
	l.mu.Unlock()
	return ld.open(n.data, l.spoolDir)
}

// open returns the content of the tar entry named data. The first read from a
// layer streams it up to the entry; later reads spool the layer to disk once,
// so copying many files from one layer costs one decompression.
func (ld *layerData) open(data, spoolDir string) (io.ReadCloser, error) {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	ld.reads++
	if ld.spool == nil && ld.reads == 1 {
		return ld.stream(data)
	}
	if ld.spool == nil {
		if err := ld.makeSpool(spoolDir); err != nil {
			return nil, err
		}
	}
	off, ok := ld.offsets[data]
	if !ok {
		return nil, fmt.Errorf("layer %s: entry %q has no content", ld.name, data)
	}
	return io.NopCloser(io.NewSectionReader(ld.spool, off, ld.sizes[data])), nil
}

func (ld *layerData) stream(data string) (io.ReadCloser, error) {
	rc, err := ld.layer.Uncompressed()
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", ld.name, err)
	}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err != nil {
			rc.Close()
			if err == io.EOF {
				return nil, fmt.Errorf("layer %s: entry %q not found", ld.name, data)
			}
			return nil, fmt.Errorf("reading layer %s: %w", ld.name, err)
		}
		if h.Name == data {
			return struct {
				io.Reader
				io.Closer
			}{tr, rc}, nil
		}
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (ld *layerData) makeSpool(dir string) error {
	rc, err := ld.layer.Uncompressed()
	if err != nil {
		return fmt.Errorf("layer %s: %w", ld.name, err)
	}
	defer rc.Close()
	f, err := os.CreateTemp(dir, "layer-spool-*.tar")
	if err != nil {
		return err
	}
	// The spool is only needed while this process reads it.
	os.Remove(f.Name())
	cr := &countingReader{r: io.TeeReader(rc, f)}
	tr := tar.NewReader(cr)
	offsets, sizes := map[string]int64{}, map[string]int64{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			f.Close()
			return fmt.Errorf("spooling layer %s: %w", ld.name, err)
		}
		if h.Typeflag == tar.TypeReg || h.Typeflag == tar.TypeRegA {
			offsets[h.Name], sizes[h.Name] = cr.n, h.Size
		}
	}
	// Drain the tar's trailing padding so the spool is complete.
	if _, err := io.Copy(io.Discard, cr); err != nil {
		f.Close()
		return fmt.Errorf("spooling layer %s: %w", ld.name, err)
	}
	ld.spool, ld.offsets, ld.sizes = f, offsets, sizes
	return nil
}

// Close releases spooled layer copies.
func (l *LayerFS) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for _, ld := range l.layers {
		ld.mu.Lock()
		if ld.spool != nil {
			errs = append(errs, ld.spool.Close())
			ld.spool = nil
		}
		ld.mu.Unlock()
	}
	return errors.Join(errs...)
}
