package executor

import (
	"archive/tar"
	"context"
	"errors"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/pkg/cache"
	"github.com/kiln-build/kiln/pkg/fsview"
)

// minKeptHeaders is the compressed size from which a layer's headers are
// kept in the layer cache: reading an entry costs three requests, which
// decompressing a smaller layer beats.
var minKeptHeaders int64 = 4 << 20

// cachedHeaders keeps the headers of big layers in the layer cache
// (fsview.HeaderCache). A rebuild whose COPY is not cached (kaniko's
// default) then learns the tree of a large base without downloading it,
// and a stage whose other steps all hit extracts nothing.
type cachedHeaders struct{ c *layerCache }

var _ fsview.HeaderCache = cachedHeaders{}

func (h cachedHeaders) key(l v1.Layer) (string, bool) {
	if size, err := l.Size(); err != nil || size < minKeptHeaders {
		return "", false
	}
	d, err := l.DiffID()
	if err != nil {
		return "", false
	}
	return cache.HeadersKey(d), true
}

func (h cachedHeaders) Headers(ctx context.Context, l v1.Layer) ([]*tar.Header, bool) {
	key, ok := h.key(l)
	if !ok {
		return nil, false
	}
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
			h.c.log.Debugf("The headers of layer %s are not in the cache (%v): reading the layer", layerName(l), err)
		}
		return nil, false
	}
	h.c.log.Debugf("The headers of layer %s (%d entries) come from the cache: the layer is not read", layerName(l), len(headers))
	return headers, true
}

func (h cachedHeaders) Keep(ctx context.Context, l v1.Layer, headers []*tar.Header) {
	if key, ok := h.key(l); ok {
		h.c.storeFrom(ctx, key, func() (v1.Layer, error) { return cache.HeadersLayer(headers) })
	}
}

// layerFS is the view of layers for COPY and RUN mounts, taking their
// headers from the layer cache when there is one.
func (b *Builder) layerFS(layers []v1.Layer) *fsview.LayerFS {
	opts := []fsview.LayerFSOption{fsview.WithSpoolDir(b.opts.workDir)}
	if b.cache != nil {
		opts = append(opts, fsview.WithHeaderCache(cachedHeaders{b.cache}))
	}
	return fsview.NewLayerFS(layers, opts...)
}
