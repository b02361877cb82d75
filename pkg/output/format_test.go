package output

import (
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

func TestConvert(t *testing.T) {
	docker, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	docker = mutate.MediaType(docker, types.DockerManifestSchema2)
	check := func(img v1.Image, manifest, config, layer types.MediaType) {
		t.Helper()
		if err := validate.Image(img); err != nil {
			t.Fatalf("invalid image: %v", err)
		}
		m, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		if m.MediaType != manifest || m.Config.MediaType != config {
			t.Errorf("manifest %s, config %s", m.MediaType, m.Config.MediaType)
		}
		for _, l := range m.Layers {
			if l.MediaType != layer {
				t.Errorf("layer %s: %s, want %s", l.Digest, l.MediaType, layer)
			}
		}
	}
	oci, err := Convert(docker, FormatOCI, map[string]string{"org.opencontainers.image.source": "https://example.com/app"})
	if err != nil {
		t.Fatal(err)
	}
	check(oci, types.OCIManifestSchema1, types.OCIConfigJSON, types.OCILayer)
	if m, _ := oci.Manifest(); m.Annotations["org.opencontainers.image.source"] != "https://example.com/app" {
		t.Errorf("annotations %v", m.Annotations)
	}
	back, err := Convert(oci, FormatDocker, nil)
	if err != nil {
		t.Fatal(err)
	}
	check(back, types.DockerManifestSchema2, types.DockerConfigJSON, types.DockerLayer)
	// The layers and config are the very same blobs.
	for _, pair := range [][2]v1.Image{{docker, oci}} {
		a, _ := pair[0].Manifest()
		b, _ := pair[1].Manifest()
		if a.Config.Digest != b.Config.Digest || a.Layers[0].Digest != b.Layers[0].Digest {
			t.Error("conversion changed a blob")
		}
	}
	if _, err := Convert(docker, FormatDocker, map[string]string{"a": "b"}); err == nil {
		t.Error("annotations on a Docker manifest were accepted")
	}
	if _, err := ParseFormat("oic"); err == nil {
		t.Error("a bad format was accepted")
	}
}
