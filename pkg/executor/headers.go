package executor

import (
	"archive/tar"
	"context"
	"errors"
	"sync"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"golang.org/x/sync/errgroup"

	"github.com/kiln-build/kiln/pkg/cache"
	"github.com/kiln-build/kiln/pkg/fsview"
	"github.com/kiln-build/kiln/pkg/rootfs"
)

// minKeptHeaders is the compressed size from which a layer's headers are
// kept in the layer cache: reading an entry costs three requests, which
// decompressing a smaller layer beats.
var minKeptHeaders int64 = 4 << 20

// cachedHeaders keeps the headers of big layers in the layer cache
// (fsview.HeaderCache). A rebuild whose COPY is not cached (kaniko's
// default) then learns the tree of a large base without downloading it,
// and a stage whose other steps all hit extracts nothing. What one build
// read is remembered, so that it is read once.
type cachedHeaders struct {
	c *layerCache

	mu   sync.Mutex
	read map[v1.Hash][]*tar.Header // nil: looked up and missing
}

var _ fsview.HeaderCache = (*cachedHeaders)(nil)

func newCachedHeaders(c *layerCache) *cachedHeaders {
	return &cachedHeaders{c: c, read: map[v1.Hash][]*tar.Header{}}
}

// key is the layer's diffID and its entry's key, for a layer big enough.
func (h *cachedHeaders) key(l v1.Layer) (v1.Hash, string, bool) {
	if size, err := l.Size(); err != nil || size < minKeptHeaders {
		return v1.Hash{}, "", false
	}
	d, err := l.DiffID()
	if err != nil {
		return v1.Hash{}, "", false
	}
	return d, cache.HeadersKey(d), true
}

func (h *cachedHeaders) Headers(ctx context.Context, l v1.Layer) ([]*tar.Header, bool) {
	d, key, ok := h.key(l)
	if !ok {
		return nil, false
	}
	h.mu.Lock()
	headers, seen := h.read[d]
	h.mu.Unlock()
	if seen {
		return headers, headers != nil
	}
	headers = h.get(ctx, l, key)
	h.mu.Lock()
	h.read[d] = headers
	h.mu.Unlock()
	return headers, headers != nil
}

func (h *cachedHeaders) get(ctx context.Context, l v1.Layer, key string) []*tar.Header {
	e, err := h.c.get(ctx, key)
	if err == nil && e.Layer == nil {
		err = errors.New("the entry has no layer")
	}
	var headers []*tar.Header
	if err == nil {
		headers, err = cache.ReadHeaders(e.Layer)
	}
	if err != nil {
		if errors.Is(err, cache.ErrCorrupt) {
			h.c.log.Warnf("The headers of layer %s kept in the cache are damaged, the layer is read instead: %v", layerName(l), err)
		} else if errors.Is(err, cache.ErrMiss) {
			h.c.log.Debugf("The headers of layer %s are not in the cache (%v)", layerName(l), err)
		}
		return nil
	}
	h.c.log.Debugf("The headers of layer %s (%d entries) come from the cache: the layer is not read for them", layerName(l), len(headers))
	return headers
}

func (h *cachedHeaders) Keep(ctx context.Context, l v1.Layer, headers []*tar.Header) {
	d, key, ok := h.key(l)
	if !ok || len(headers) > cache.MaxHeaders {
		return
	}
	h.mu.Lock()
	h.read[d] = headers
	h.mu.Unlock()
	h.c.storeFrom(ctx, key, func() (v1.Layer, error) { return cache.HeadersLayer(headers) })
}

// tappedLayer is a layer whose headers are recorded while it is extracted
// and then kept in the cache: the pass that unpacks a base also gives a
// later build its tree.
type tappedLayer struct {
	v1.Layer
	headers *cachedHeaders
	ctx     context.Context // the build's, for the cache write
}

// tapOptions are the extraction options that record l's headers, if it is
// tapped, and what to call once it extracted whole.
func tapOptions(l v1.Layer) ([]rootfs.Option, func()) {
	t, ok := l.(*tappedLayer)
	if !ok {
		return nil, func() {}
	}
	var seen []*tar.Header
	record := rootfs.WithHeaders(func(h *tar.Header) { seen = append(seen, h) })
	return []rootfs.Option{record}, func() { t.headers.Keep(t.ctx, t.Layer, seen) }
}

// prefetchForCopy decides, with a layer cache, whether a stage unpacks its
// base at FROM. It does when a COPY comes before the stage's first RUN and
// the cache lacks the headers of a big base layer: no build that wrote to
// this cache unpacked this base, so its RUN steps are all but sure to run,
// and the COPY should read the tree on disk rather than decompress the
// layers a second time. The layers missing headers are tapped, so that the
// unpacking keeps them. Otherwise the COPY reads the kept headers and
// nothing is unpacked unless a RUN misses.
func (s *stageBuilder) prefetchForCopy(ctx context.Context, layers []v1.Layer) ([]v1.Layer, bool) {
	if !copiesBeforeRun(s.stage.Commands) {
		return nil, false
	}
	// The lookups run at once; what they read is remembered for the COPY.
	tapped := make([]v1.Layer, len(layers))
	var missing atomic.Bool
	var g errgroup.Group
	for i, l := range layers {
		tapped[i] = l
		if _, _, big := s.b.headers.key(l); big {
			g.Go(func() error {
				if _, ok := s.b.headers.Headers(ctx, l); !ok {
					missing.Store(true)
					tapped[i] = &tappedLayer{Layer: l, headers: s.b.headers, ctx: ctx}
				}
				return nil
			})
		}
	}
	g.Wait()
	return tapped, missing.Load()
}

// copiesBeforeRun reports whether a COPY or ADD comes before the first RUN.
func copiesBeforeRun(cmds []instructions.Command) bool {
	for _, c := range cmds {
		switch c.(type) {
		case *instructions.RunCommand:
			return false
		case *instructions.CopyCommand, *instructions.AddCommand:
			return true
		}
	}
	return false
}

// layerFS is the view of layers for COPY and RUN mounts, taking their
// headers from the layer cache when there is one.
func (b *Builder) layerFS(layers []v1.Layer) *fsview.LayerFS {
	opts := []fsview.LayerFSOption{fsview.WithSpoolDir(b.opts.workDir)}
	if b.headers != nil {
		opts = append(opts, fsview.WithHeaderCache(b.headers))
	}
	return fsview.NewLayerFS(layers, opts...)
}
