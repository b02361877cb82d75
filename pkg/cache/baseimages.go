package cache

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sirupsen/logrus"
)

// BaseImages is a directory of base images (kaniko's --cache-dir), filled
// by `kiln cache warm` and read by builds, at the same time if need be. It
// is an OCI image layout; each image is named by the reference it was
// warmed for and annotated with its platform, the digest the reference
// pointed at (an index's, for a multi-platform image) and when it was
// fetched.
type BaseImages struct {
	layoutDir
}

const (
	platformAnnotation = "dev.kiln.platform"
	resolvedAnnotation = "dev.kiln.resolved"
	fetchedAnnotation  = "dev.kiln.fetched"
)

// OpenBaseImages opens (creating if needed) the base image directory dir.
func OpenBaseImages(dir string) (*BaseImages, error) {
	l, err := openLayoutDir(dir)
	if err != nil {
		return nil, fmt.Errorf("--cache-dir %q: %w", dir, err)
	}
	return &BaseImages{layoutDir: l}, nil
}

func (b *BaseImages) String() string { return b.dir }

// canonical names a reference the way the index does: registry and
// repository in full ("docker.io/library/busybox:latest").
func canonical(ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref, name.WeakValidation)
	if err != nil {
		return nil, fmt.Errorf("invalid image reference %q: %w", ref, err)
	}
	return r, nil
}

// Put stores img, the image ref names for platform; resolved is the digest
// ref pointed at when it was fetched.
func (b *BaseImages) Put(ctx context.Context, ref string, platform v1.Platform, resolved v1.Hash, img v1.Image, now time.Time) error {
	r, err := canonical(ref)
	if err != nil {
		return err
	}
	desc, err := b.writeImage(ctx, img)
	if err != nil {
		return err
	}
	p := platform.String()
	desc.Annotations = map[string]string{
		refAnnotation:      r.Name(),
		platformAnnotation: p,
		resolvedAnnotation: resolved.String(),
		fetchedAnnotation:  now.UTC().Format(time.RFC3339),
	}
	return b.replace(ctx, desc, func(d v1.Descriptor) bool {
		return d.Annotations[refAnnotation] == r.Name() && d.Annotations[platformAnnotation] == p
	})
}

// Has reports whether ref is stored for platform and fresh (see Get).
func (b *BaseImages) Has(ref string, platform v1.Platform, ttl time.Duration, now time.Time) bool {
	_, ok := b.find(ref, platform, ttl, now)
	return ok
}

// Get returns ref for platform when the directory holds it: a reference
// pinned by digest whatever its age, a tag only if it was fetched within
// ttl (0: any age). It reports false otherwise, or when the stored image
// is damaged.
func (b *BaseImages) Get(ctx context.Context, ref string, platform v1.Platform, ttl time.Duration, now time.Time) (v1.Image, bool) {
	desc, ok := b.find(ref, platform, ttl, now)
	if !ok {
		return nil, false
	}
	img, err := b.image(ctx, desc)
	if err != nil {
		return nil, false
	}
	return img, true
}

func (b *BaseImages) find(ref string, platform v1.Platform, ttl time.Duration, now time.Time) (v1.Descriptor, bool) {
	r, err := canonical(ref)
	if err != nil {
		return v1.Descriptor{}, false
	}
	idx, err := b.readIndex()
	if err != nil {
		return v1.Descriptor{}, false
	}
	p := platform.String()
	digest, pinned := r.(name.Digest)
	for _, d := range idx.Manifests {
		a := d.Annotations
		if a[platformAnnotation] != p {
			continue
		}
		switch {
		case pinned:
			// Content named by its digest never goes stale.
			if a[resolvedAnnotation] == digest.DigestStr() || d.Digest.String() == digest.DigestStr() {
				return d, true
			}
		case a[refAnnotation] == r.Name():
			fetched, err := time.Parse(time.RFC3339, a[fetchedAnnotation])
			if err == nil && (ttl == 0 || now.Sub(fetched) <= ttl) {
				return d, true
			}
		}
	}
	return v1.Descriptor{}, false
}

// ImageSource pulls base images; the executor's ImageSource.
type ImageSource interface {
	Pull(ctx context.Context, ref string, platform v1.Platform) (v1.Image, error)
}

// LocalFirst is an ImageSource that takes base images from dir when it
// holds them (see Get) without contacting the registry, and from next
// otherwise.
type LocalFirst struct {
	Images *BaseImages
	Next   ImageSource
	TTL    time.Duration
	Log    logrus.FieldLogger
}

func (l *LocalFirst) Pull(ctx context.Context, ref string, platform v1.Platform) (v1.Image, error) {
	if img, ok := l.Images.Get(ctx, ref, platform, l.TTL, time.Now()); ok {
		d, _ := img.Digest()
		l.Log.Infof("Using %q from --cache-dir %q (%s)", ref, l.Images, d)
		return img, nil
	}
	if strings.Contains(ref, "@") {
		l.Log.Debugf("%q is not in --cache-dir %q: pulling it", ref, l.Images)
	}
	return l.Next.Pull(ctx, ref, platform)
}
