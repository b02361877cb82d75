package registry

import (
	"net/http"
	"slices"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/internal/testregistry"
)

// seedPlatform pushes an image for platform (a Docker manifest unless oci).
func seedPlatform(t *testing.T, reg *testregistry.Registry, repoTag, platform string, oci bool) v1.Image {
	t.Helper()
	p, err := v1.ParsePlatform(platform)
	if err != nil {
		t.Fatal(err)
	}
	img := withPlatform(t, randomImage(t, 1024, 1), *p)
	if oci {
		img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.OCIConfigJSON)
	}
	seed(t, reg, repoTag, img)
	return img
}

func TestPushIndexTwoPlatforms(t *testing.T) {
	reg := testregistry.Start(t)
	amd := seedPlatform(t, reg, "team/app:amd64", "linux/amd64", false)
	arm := seedPlatform(t, reg, "team/app:arm64", "linux/arm64/v8", false)
	c, _ := newClient(t, WithInsecureRegistries(reg.Host))

	var entries []IndexEntry
	for _, src := range []string{"team/app:amd64", "team/app:arm64"} {
		e, err := c.ResolveEntries(t.Context(), reg.Ref(src))
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e...)
	}
	if len(entries) != 2 || entries[1].Descriptor.Platform.String() != "linux/arm64/v8" || entries[1].Source != reg.Ref("team/app@"+mustDigest(t, arm).String()) {
		t.Fatalf("entries %+v", entries)
	}
	uploads := countRequests(reg, http.MethodPost, "/blobs/uploads/")
	pushed, err := c.PushIndex(t.Context(), reg.Ref("team/app:v1"), entries, FormatAuto)
	if err != nil {
		t.Fatal(err)
	}
	idx := remoteIndex(t, reg, "team/app:v1")
	im, _ := idx.IndexManifest()
	if im.MediaType != types.DockerManifestList || len(im.Manifests) != 2 {
		t.Fatalf("index %+v", im)
	}
	if d, _ := idx.Digest(); d.String() != pushed.DigestStr() {
		t.Fatalf("pushed %s, tag points at %s", pushed, d)
	}
	// As crane and container runtimes resolve it:
	for platform, want := range map[string]v1.Image{"linux/amd64": amd, "linux/arm64": arm} {
		p, _ := v1.ParsePlatform(platform)
		ref, _ := name.ParseReference(reg.Ref("team/app:v1"))
		img, err := remote.Image(ref, append(reg.RemoteOptions(), remote.WithPlatform(*p))...)
		if err != nil {
			t.Fatal(err)
		}
		if mustDigest(t, img) != mustDigest(t, want) {
			t.Errorf("%s resolves to another image", platform)
		}
	}
	if n := countRequests(reg, http.MethodPost, "/blobs/uploads/"); n != uploads {
		t.Errorf("%d blob uploads: the entries' blobs were uploaded again", n-uploads)
	}
}

func TestPushIndexFormatsAndSources(t *testing.T) {
	reg, other := testregistry.Start(t), testregistry.Start(t)
	seedPlatform(t, reg, "team/app:amd64", "linux/amd64", false)
	seedPlatform(t, other, "ci/app:arm64", "linux/arm64", true)
	c, _ := newClient(t, WithInsecureRegistries(reg.Host, other.Host))
	entries := resolveAll(t, c, reg.Ref("team/app:amd64"), other.Ref("ci/app:arm64"))

	_, err := c.PushIndex(t.Context(), reg.Ref("team/app:v1"), entries, FormatDocker)
	assertErrorContains(t, err, `pushing the manifest list "`+reg.Ref("team/app:v1")+`"`, "a Docker manifest list holds only Docker manifests")

	// An OCI entry makes the automatic format OCI; the entry from the
	// other registry is copied in.
	if _, err := c.PushIndex(t.Context(), reg.Ref("team/app:v1"), entries, FormatAuto); err != nil {
		t.Fatal(err)
	}
	im, _ := remoteIndex(t, reg, "team/app:v1").IndexManifest()
	if im.MediaType != types.OCIImageIndex {
		t.Fatalf("media type %s", im.MediaType)
	}
	if _, err := remote.Head(mustRef(t, reg.Ref("team/app@"+entries[1].Descriptor.Digest.String())), reg.RemoteOptions()...); err != nil {
		t.Fatalf("the entry from the other registry was not copied: %v", err)
	}

	// The list can itself be a source: its entries are listed again.
	again := resolveAll(t, c, reg.Ref("team/app:v1"))
	if len(again) != 2 || !slices.Equal([]v1.Hash{again[0].Descriptor.Digest, again[1].Descriptor.Digest}, []v1.Hash{entries[0].Descriptor.Digest, entries[1].Descriptor.Digest}) {
		t.Fatalf("entries of the list %+v", again)
	}

	dup := append(entries, resolveAll(t, c, reg.Ref("team/app:amd64"))...)
	dup[2].Descriptor.Digest = dup[1].Descriptor.Digest
	dup[2].Descriptor.Platform = dup[0].Descriptor.Platform
	_, err = c.PushIndex(t.Context(), reg.Ref("team/app:v2"), dup, FormatOCI)
	assertErrorContains(t, err, "two manifests for linux/amd64")
}

func TestResolveEntriesSkipsAttestations(t *testing.T) {
	reg := testregistry.Start(t)
	img := seedPlatform(t, reg, "team/app:amd64", "linux/amd64", true)
	attestation := randomImage(t, 64, 1)
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: attestation, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "unknown", Architecture: "unknown"}}})
	if err := remote.WriteIndex(mustRef(t, reg.Ref("team/app:v1")), idx, reg.RemoteOptions()...); err != nil {
		t.Fatal(err)
	}
	c, _ := newClient(t, WithInsecureRegistries(reg.Host))
	entries := resolveAll(t, c, reg.Ref("team/app:v1"))
	if len(entries) != 1 || entries[0].Descriptor.Digest != mustDigest(t, img) {
		t.Fatalf("entries %+v", entries)
	}

	seed(t, reg, "team/noplatform:v1", randomImage(t, 64, 1))
	_, err := c.ResolveEntries(t.Context(), reg.Ref("team/noplatform:v1"))
	assertErrorContains(t, err, "its config names no platform", "kiln manifest annotate")
}

func resolveAll(t *testing.T, c *Client, sources ...string) []IndexEntry {
	t.Helper()
	var out []IndexEntry
	for _, s := range sources {
		e, err := c.ResolveEntries(t.Context(), s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e...)
	}
	return out
}

func remoteIndex(t *testing.T, reg *testregistry.Registry, repoTag string) v1.ImageIndex {
	t.Helper()
	idx, err := remote.Index(mustRef(t, reg.Ref(repoTag)), reg.RemoteOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}
