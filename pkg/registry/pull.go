package registry

import (
	"context"
	"fmt"
	"runtime"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Pull resolves ref (a tag, ":latest" when it names none, or a digest) to an
// image for platform; a zero platform means linux on this machine's
// architecture. A manifest list or OCI index resolves to its entry for the
// platform; a single-platform image for another platform is used with a
// warning, as Docker does. Only the manifest and config are fetched now:
// layers are fetched when read, and kept in the cache directory if the
// client has one.
func (c *Client) Pull(ctx context.Context, ref string, platform v1.Platform) (v1.Image, error) {
	r, err := c.parseReference(ref, pull)
	if err != nil {
		return nil, fmt.Errorf("pulling %q: %w", ref, err)
	}
	if platform.OS == "" && platform.Architecture == "" {
		platform = v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	}
	img, err := c.pull(ctx, r, platform)
	if err != nil {
		return nil, fmt.Errorf("pulling %q: %w", r.Name(), err)
	}
	return img, nil
}

func (c *Client) pull(ctx context.Context, ref name.Reference, platform v1.Platform) (v1.Image, error) {
	opts := append(c.remoteOptions(ctx, ref.Context().Registry, pull), remote.WithPlatform(platform))
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return nil, err
	}
	img, err := desc.Image() // picks the platform's entry from an index
	if err != nil {
		return nil, err
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, err
	}
	if !desc.MediaType.IsIndex() {
		cfg, err := img.ConfigFile()
		if err != nil {
			return nil, err
		}
		if p := cfg.Platform(); p != nil && !p.Satisfies(platform) {
			c.log.Warnf("image %q is for %s, not %s: using it anyway", ref.Name(), p, platform)
		}
	}
	c.log.Infof("resolved %q to %s for %s", ref.Name(), digest, platform)
	if c.cacheDir != "" {
		img = &cachedImage{Image: img, cache: &layerCache{dir: c.cacheDir, log: c.log}}
	}
	return img, nil
}
