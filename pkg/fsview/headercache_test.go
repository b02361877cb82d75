package fsview_test

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"reflect"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/pkg/fsview"
)

// memHeaders is a HeaderCache in memory, by diffID.
type memHeaders struct {
	mu    sync.Mutex
	kept  map[v1.Hash][]*tar.Header
	asked int
}

func (m *memHeaders) Headers(_ context.Context, l v1.Layer) ([]*tar.Header, bool) {
	d, err := l.DiffID()
	if err != nil {
		return nil, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.asked++
	h, ok := m.kept[d]
	return h, ok
}

func (m *memHeaders) Keep(_ context.Context, l v1.Layer, headers []*tar.Header) {
	d, err := l.DiffID()
	if err != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.kept[d] = headers
}

// readsCounted counts the times a layer's content is read.
type readsCounted struct {
	v1.Layer
	mu    sync.Mutex
	reads int
}

func (r *readsCounted) Uncompressed() (io.ReadCloser, error) {
	r.mu.Lock()
	r.reads++
	r.mu.Unlock()
	return r.Layer.Uncompressed()
}

// A view whose layers' headers are kept answers Lstat and ReadDir without
// reading the layers, and the same as a view that read them; content is
// still read from the layer itself.
func TestLayerFSHeaderCache(t *testing.T) {
	lower := mkLayer(t, "d etc/", "f etc/passwd root:x:0:0::/root:/bin/sh\n", "l bin usr/bin", "d usr/", "d usr/bin/", "f usr/bin/sh #!")
	upper := mkLayer(t, "d etc/", "f etc/.wh.passwd", "f etc/group root:x:0:\n", "h usr/bin/ash usr/bin/sh")
	hc := &memHeaders{kept: map[v1.Hash][]*tar.Header{}}

	first := fsview.NewLayerFS([]v1.Layer{lower, upper}, fsview.WithHeaderCache(hc))
	want := details(t, first, "/")
	if len(hc.kept) != 2 {
		t.Fatalf("%d layers' headers kept, want 2", len(hc.kept))
	}

	cl, cu := &readsCounted{Layer: lower}, &readsCounted{Layer: upper}
	second := fsview.NewLayerFS([]v1.Layer{cl, cu}, fsview.WithHeaderCache(hc))
	got := details(t, second, "/")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("from kept headers:\n%s\nfrom the layers:\n%s", got, want)
	}
	if e, err := second.Lstat("/bin/ash"); err != nil || e.Size != 2 {
		t.Errorf("hard link through a symlink: %+v, %v", e, err)
	}
	if cl.reads+cu.reads != 0 {
		t.Errorf("the layers were read %d+%d times for their headers", cl.reads, cu.reads)
	}
	if s := read(t, second, "/etc/group"); s != "root:x:0:\n" {
		t.Errorf("/etc/group = %q", s)
	}
	if cu.reads != 1 || cl.reads != 0 {
		t.Errorf("reading one file read the layers %d (lower) and %d (upper) times, want 0 and 1", cl.reads, cu.reads)
	}
	// A clone keeps the cache for the layers appended to it.
	c := second.Clone()
	c.Append(mkLayer(t, "f new x"))
	listing(t, c, "/")
	if len(hc.kept) != 3 {
		t.Errorf("the clone's new layer was not kept: %d kept", len(hc.kept))
	}
}

// details lists a tree with every entry's metadata.
func details(t *testing.T, fsys fsview.FS, dir string) []string {
	t.Helper()
	ents, err := fsys.ReadDir(dir)
	if err != nil {
		t.Fatalf("ReadDir(%q): %v", dir, err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, fmt.Sprintf("%s %v %d:%d size=%d link=%q inode=%q mtime=%s", e.Path, e.Mode, e.UID, e.GID, e.Size, e.Linkname, e.Inode, e.ModTime))
		if e.IsDir() {
			out = append(out, details(t, fsys, e.Path)...)
		}
	}
	return out
}
