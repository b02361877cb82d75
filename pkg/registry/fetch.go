package registry

import (
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Fetch returns the image ref names, as it is: no platform is selected and
// no mirror is tried (a cache entry, say). Like Pull, only the manifest and
// config are fetched now. A missing image is a *Error of KindNotFound.
func (c *Client) Fetch(ctx context.Context, ref string) (v1.Image, error) {
	r, err := c.parseReference(ref, pull)
	if err != nil {
		return nil, fmt.Errorf("fetching %q: %w", ref, err)
	}
	var img v1.Image
	err = c.retryBroken(ctx, pull, func() error {
		desc, err := remote.Get(r, c.remoteOptions(ctx, r.Context().Registry, pull)...)
		if err != nil {
			return err
		}
		if desc.MediaType.IsIndex() {
			return fmt.Errorf("%q is an image index, not an image", ref)
		}
		img, err = desc.Image()
		return err
	})
	if err != nil {
		return nil, c.explainRef("fetching", r, pull, err)
	}
	return &wrappedImage{Image: img, wrap: c.wrapPulledLayer}, nil
}
