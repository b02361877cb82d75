package registry

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kiln-build/kiln/pkg/progress"
)

// Pull resolves ref (a tag, ":latest" when it names none, or a digest) to an
// image for platform; a zero platform means linux on this machine's
// architecture. A manifest list or OCI index resolves to its entry for the
// platform, variants compared as NormalizePlatform spells them; a
// single-platform image for another platform is used with a warning, as
// Docker does. The registry's mirrors are tried first (see
// WithRegistryMirrors). Only the manifest and config are fetched now:
// layers are fetched when read, resumed when interrupted, and kept in the
// cache directory if the client has one.
func (c *Client) Pull(ctx context.Context, ref string, platform v1.Platform) (v1.Image, error) {
	r, err := c.parseReference(ref, pull)
	if err != nil {
		return nil, fmt.Errorf("pulling %q: %w", ref, err)
	}
	if platform.OS == "" && platform.Architecture == "" {
		platform = v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	}
	platform = NormalizePlatform(platform)
	mirrors, err := c.mirrorsFor(r)
	if err != nil {
		return nil, fmt.Errorf("pulling %q: %w", ref, err)
	}
	var mirrorErrs []error
	for _, m := range mirrors {
		img, err := c.pull(ctx, m, platform)
		if err == nil {
			return img, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		err = c.explainRef("pulling", m, pull, err)
		c.log.Warnf("Mirror could not serve %q: %v", r.Name(), err)
		mirrorErrs = append(mirrorErrs, err)
	}
	if len(mirrors) > 0 && c.skipFallback {
		return nil, fmt.Errorf("pulling %q: no mirror could serve it, and --skip-default-registry-fallback forbids pulling from %q: %w",
			r.Name(), r.Context().RegistryStr(), errors.Join(mirrorErrs...))
	}
	img, err := c.pull(ctx, r, platform)
	if err != nil {
		return nil, c.explainRef("pulling", r, pull, err)
	}
	return img, nil
}

func (c *Client) pull(ctx context.Context, ref name.Reference, platform v1.Platform) (v1.Image, error) {
	var img v1.Image
	err := c.retryBroken(ctx, pull, func() error {
		desc, err := remote.Get(ref, c.remoteOptions(ctx, ref.Context().Registry, pull)...)
		if err != nil {
			return err
		}
		if desc.MediaType.IsIndex() {
			img, err = c.imageFromIndex(desc, platform)
		} else {
			img, err = c.singleImage(ref, desc, platform)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, err
	}
	c.log.Infof("Resolved %q to %s for %s", ref.Name(), digest, platform)
	c.progress.Event(progress.Event{Kind: progress.Pulled, Time: time.Now(), Name: ref.Name(), Digest: digest.String()})
	return &wrappedImage{Image: img, wrap: c.wrapPulledLayer}, nil
}

// imageFromIndex follows desc, an index, and the indexes it may nest, to
// the image for platform.
func (c *Client) imageFromIndex(desc *remote.Descriptor, platform v1.Platform) (v1.Image, error) {
	idx, err := desc.ImageIndex()
	if err != nil {
		return nil, err
	}
	for {
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, err
		}
		child, err := selectManifest(im, platform)
		if err != nil {
			return nil, err
		}
		if !child.MediaType.IsIndex() {
			return idx.Image(child.Digest)
		}
		if idx, err = idx.ImageIndex(child.Digest); err != nil {
			return nil, err
		}
	}
}

func (c *Client) singleImage(ref name.Reference, desc *remote.Descriptor, platform v1.Platform) (v1.Image, error) {
	img, err := desc.Image()
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	if p := cfg.Platform(); p != nil && p.Architecture != "" && platformRank(NormalizePlatform(*p), platform) == 0 {
		c.log.Warnf("Image %q is for %s, not %s: using it anyway", ref.Name(), NormalizePlatform(*p), platform)
	}
	return img, nil
}

// wrapPulledLayer makes a pulled layer resume interrupted downloads and,
// with a cache directory, go through the layer cache.
func (c *Client) wrapPulledLayer(l v1.Layer) v1.Layer {
	l = &resumingLayer{Layer: l, retries: c.pullRetries, delay: c.retryDelay, log: c.log}
	if c.cacheDir != "" {
		l = (&layerCache{dir: c.cacheDir, log: c.log, client: c}).wrap(l)
	}
	return l
}
