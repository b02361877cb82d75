package cache

import (
	"context"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

func TestBaseImages(t *testing.T) {
	ctx := context.Background()
	b, err := OpenBaseImages(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	digest, _ := img.Digest()
	index := v1.Hash{Algorithm: "sha256", Hex: "1111111111111111111111111111111111111111111111111111111111111111"}
	amd64 := v1.Platform{OS: "linux", Architecture: "amd64"}
	arm64 := v1.Platform{OS: "linux", Architecture: "arm64"}
	fetched := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := b.Put(ctx, "busybox:1.36", amd64, index, img, fetched); err != nil {
		t.Fatal(err)
	}
	got, ok := b.Get(ctx, "docker.io/library/busybox:1.36", amd64, time.Hour, fetched.Add(time.Minute))
	if !ok {
		t.Fatal("a fresh tag is not served")
	}
	if d, _ := got.Digest(); d != digest {
		t.Errorf("digest %s, want %s", d, digest)
	}
	if err := validate.Image(got); err != nil {
		t.Errorf("stored image: %v", err)
	}
	if _, ok := b.Get(ctx, "busybox:1.36", amd64, time.Hour, fetched.Add(2*time.Hour)); ok {
		t.Error("an old tag is served")
	}
	if _, ok := b.Get(ctx, "busybox:1.36", arm64, 0, fetched); ok {
		t.Error("another platform's image is served")
	}
	// Pinned by the digest the reference pointed at (an index's), or by
	// the image's own: served whatever its age.
	for _, ref := range []string{"busybox@" + index.String(), "busybox@" + digest.String()} {
		if _, ok := b.Get(ctx, ref, amd64, time.Hour, fetched.Add(1000*time.Hour)); !ok {
			t.Errorf("%s is not served", ref)
		}
	}
	if _, ok := b.Get(ctx, "busybox@sha256:2222222222222222222222222222222222222222222222222222222222222222", amd64, 0, fetched); ok {
		t.Error("another digest is served")
	}
}
