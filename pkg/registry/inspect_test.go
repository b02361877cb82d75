package registry

import (
	"bytes"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/internal/testregistry"
)

func TestManifestAndIndexManifests(t *testing.T) {
	reg := testregistry.Start(t)
	amd := seedPlatform(t, reg, "team/app:amd64", "linux/amd64", false)
	arm := seedPlatform(t, reg, "team/app:arm64", "linux/arm64/v8", true)
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, Annotations: map[string]string{"a": "b"}}})
	if err := remote.WriteIndex(mustRef(t, reg.Ref("team/app:multi")), idx, reg.RemoteOptions()...); err != nil {
		t.Fatal(err)
	}
	c, _ := newClient(t)

	img, err := c.Manifest(t.Context(), reg.Ref("team/app:amd64"), true)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := amd.RawManifest()
	cfg, _ := amd.RawConfigFile()
	digest, _ := amd.Digest()
	if !bytes.Equal(img.Raw, raw) || !bytes.Equal(img.Config, cfg) || img.Ref != reg.Ref("team/app@"+digest.String()) || img.Descriptor.MediaType != types.DockerManifestSchema2 {
		t.Fatalf("image manifest %+v", img)
	}

	list, err := c.Manifest(t.Context(), reg.Ref("team/app:multi"), true)
	if err != nil {
		t.Fatal(err)
	}
	rawIdx, _ := idx.RawManifest()
	if !bytes.Equal(list.Raw, rawIdx) || list.Config != nil || !list.Descriptor.MediaType.IsIndex() {
		t.Fatalf("index %+v", list)
	}
	children, err := c.IndexManifests(t.Context(), list, true)
	if err != nil {
		t.Fatal(err)
	}
	armCfg, _ := arm.RawConfigFile()
	if len(children) != 2 || children[1].Descriptor.Platform.Variant != "v8" || children[1].Descriptor.Annotations["a"] != "b" ||
		!bytes.Equal(children[1].Config, armCfg) || children[0].Descriptor.MediaType != types.DockerManifestSchema2 {
		t.Fatalf("children %+v", children)
	}
	if _, err := c.IndexManifests(t.Context(), img, false); err == nil {
		t.Fatal("an image was taken for an index")
	}

	_, err = c.Manifest(t.Context(), reg.Ref("team/missing:1"), false)
	assertKind(t, err, KindNotFound, `inspecting "`+reg.Ref("team/missing:1")+`"`)
}
