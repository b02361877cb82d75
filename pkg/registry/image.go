package registry

import (
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// wrappedImage is a pulled image whose layers are wrapped (to resume
// interrupted downloads, to go through the layer cache).
type wrappedImage struct {
	v1.Image
	wrap func(v1.Layer) v1.Layer
}

func (i *wrappedImage) Layers() ([]v1.Layer, error) {
	ls, err := i.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(ls))
	for n, l := range ls {
		out[n] = i.wrapLayer(l)
	}
	return out, nil
}

func (i *wrappedImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	l, err := i.Image.LayerByDigest(h)
	if err != nil {
		return nil, err
	}
	return i.wrapLayer(l), nil
}

func (i *wrappedImage) LayerByDiffID(h v1.Hash) (v1.Layer, error) {
	l, err := i.Image.LayerByDiffID(h)
	if err != nil {
		return nil, err
	}
	return i.wrapLayer(l), nil
}

// ConfigLayer keeps the mount hint of the config blob (see wrapLayer).
func (i *wrappedImage) ConfigLayer() (v1.Layer, error) {
	return partial.ConfigLayer(i.Image)
}

// Descriptor keeps the descriptor of an image picked from an index, with
// its platform.
func (i *wrappedImage) Descriptor() (*v1.Descriptor, error) {
	return partial.Descriptor(i.Image)
}

// wrapLayer keeps go-containerregistry's mount hint around the wrapped
// layer: with it, a push to another repository of the same registry mounts
// the blob instead of uploading it.
func (i *wrappedImage) wrapLayer(l v1.Layer) v1.Layer {
	if ml, ok := l.(*remote.MountableLayer); ok {
		return &remote.MountableLayer{Layer: i.wrap(ml.Layer), Reference: ml.Reference}
	}
	return i.wrap(l)
}
