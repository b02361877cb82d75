package registry

import (
	"bytes"
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// RemoteManifest is a manifest (an image manifest or an index) as a
// registry serves it.
type RemoteManifest struct {
	// Ref is its digest reference, "host/repo@sha256:...".
	Ref string
	// Descriptor has its media type, digest and size; for a manifest read
	// through an index, also the platform and annotations the index gives.
	Descriptor v1.Descriptor
	// Raw is the manifest as served, byte for byte.
	Raw []byte
	// Config is an image manifest's config blob, when asked for.
	Config []byte
}

// Manifest fetches the manifest ref names, an image's or an index's,
// without resolving a platform: what `docker manifest inspect` shows.
// With config, an image manifest's config blob is fetched too.
func (c *Client) Manifest(ctx context.Context, ref string, config bool) (*RemoteManifest, error) {
	const op = "inspecting"
	r, err := c.parseReference(ref, pull)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", op, ref, err)
	}
	desc, err := remote.Get(r, c.remoteOptions(ctx, r.Context().Registry, pull)...)
	if err != nil {
		return nil, c.explainRef(op, r, pull, err)
	}
	m := &RemoteManifest{
		Ref:        r.Context().Digest(desc.Digest.String()).Name(),
		Descriptor: desc.Descriptor,
		Raw:        desc.Manifest,
	}
	if config && desc.MediaType.IsImage() {
		img, err := desc.Image()
		if err == nil {
			m.Config, err = img.RawConfigFile()
		}
		if err != nil {
			return nil, c.explainRef(op, r, pull, err)
		}
	}
	return m, nil
}

// IndexManifests fetches the manifests index (as Manifest returned it)
// lists, in its order, each with the descriptor the index gives it; with
// config, images come with their config blobs.
func (c *Client) IndexManifests(ctx context.Context, index *RemoteManifest, config bool) ([]RemoteManifest, error) {
	if !index.Descriptor.MediaType.IsIndex() {
		return nil, fmt.Errorf("%q is a %s, not an index", index.Ref, index.Descriptor.MediaType)
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(index.Raw))
	if err != nil {
		return nil, fmt.Errorf("reading the index %q: %w", index.Ref, err)
	}
	r, err := c.parseReference(index.Ref, pull)
	if err != nil {
		return nil, err
	}
	out := make([]RemoteManifest, 0, len(im.Manifests))
	for _, d := range im.Manifests {
		child, err := c.Manifest(ctx, r.Context().Digest(d.Digest.String()).Name(), config && d.MediaType.IsImage())
		if err != nil {
			return nil, err
		}
		child.Descriptor = d
		out = append(out, *child)
	}
	return out, nil
}
