package executor

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// configFile is the image config kiln reads and writes: go-containerregistry's
// ConfigFile plus the fields it does not model yet, so they survive from a base
// image and can be set by the Dockerfile.
type configFile struct {
	v1.ConfigFile
	Config runConfig `json:"config"`
}

type runConfig struct {
	v1.Config
	Healthcheck *healthConfig `json:"Healthcheck,omitempty"`
}

type healthConfig struct {
	v1.HealthConfig
	StartInterval time.Duration `json:"StartInterval,omitempty"`
}

// readConfig parses img's config into a configFile.
func readConfig(img v1.Image) (*configFile, error) {
	raw, err := img.RawConfigFile()
	if err != nil {
		return nil, err
	}
	cf := &configFile{}
	if err := json.Unmarshal(raw, cf); err != nil {
		return nil, fmt.Errorf("parsing image config: %w", err)
	}
	return cf, nil
}

// clone returns a deep copy (through JSON: the config is small).
func (c *configFile) clone() *configFile {
	raw, err := json.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("marshalling image config: %v", err))
	}
	out := &configFile{}
	if err := json.Unmarshal(raw, out); err != nil {
		panic(fmt.Sprintf("unmarshalling image config: %v", err))
	}
	return out
}

// assemble returns base with layers appended and cfg as its config. The
// rootfs diffIDs come from the layers; history and everything else from cfg.
func assemble(base v1.Image, layers []v1.Layer, cfg *configFile) (v1.Image, error) {
	img := base
	if len(layers) > 0 {
		mt, err := base.MediaType()
		if err != nil {
			return nil, err
		}
		adds := make([]mutate.Addendum, len(layers))
		for i, l := range layers {
			lmt, err := l.MediaType()
			if err != nil {
				return nil, err
			}
			// A Docker manifest cannot reference OCI-only layer types (zstd).
			if mt == types.DockerManifestSchema2 && lmt == types.OCILayerZStd {
				img = mutate.MediaType(img, types.OCIManifestSchema1)
				img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
				mt = types.OCIManifestSchema1
			}
			adds[i] = mutate.Addendum{Layer: l, MediaType: lmt}
			// eStargz layers carry the annotations that let a snapshotter
			// find and verify their table of contents (layer.Annotated).
			if a, ok := l.(interface{ Annotations() map[string]string }); ok {
				adds[i].Annotations = a.Annotations()
			}
		}
		if img, err = mutate.Append(img, adds...); err != nil {
			return nil, err
		}
	}
	appended, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	out := cfg.clone()
	out.RootFS = appended.RootFS
	raw, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	return withRawConfig(img, raw)
}

// rawConfigImage replaces an image's config with raw bytes.
type rawConfigImage struct {
	v1.Image
	raw      []byte
	manifest *v1.Manifest
}

func withRawConfig(img v1.Image, raw []byte) (v1.Image, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	m = m.DeepCopy()
	m.Config.Digest = v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sha256.Sum256(raw))}
	m.Config.Size = int64(len(raw))
	// Through JSON and back, so that Manifest is exactly what RawManifest
	// says (an empty map and a missing field are the same in JSON).
	rawManifest, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if m, err = v1.ParseManifest(bytes.NewReader(rawManifest)); err != nil {
		return nil, err
	}
	return &rawConfigImage{Image: img, raw: raw, manifest: m}, nil
}

func (i *rawConfigImage) RawConfigFile() ([]byte, error) { return i.raw, nil }

func (i *rawConfigImage) ConfigFile() (*v1.ConfigFile, error) {
	return v1.ParseConfigFile(bytes.NewReader(i.raw))
}

func (i *rawConfigImage) ConfigName() (v1.Hash, error) { return i.manifest.Config.Digest, nil }

func (i *rawConfigImage) Manifest() (*v1.Manifest, error) { return i.manifest.DeepCopy(), nil }

func (i *rawConfigImage) RawManifest() ([]byte, error) { return json.Marshal(i.manifest) }

func (i *rawConfigImage) Digest() (v1.Hash, error) {
	raw, err := i.RawManifest()
	if err != nil {
		return v1.Hash{}, err
	}
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sha256.Sum256(raw))}, nil
}

func (i *rawConfigImage) Size() (int64, error) {
	raw, err := i.RawManifest()
	return int64(len(raw)), err
}

// LayerByDigest must find the config blob too: remote.Write uploads it
// through this method.
func (i *rawConfigImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	if h == i.manifest.Config.Digest {
		return partial.ConfigLayer(i)
	}
	return i.Image.LayerByDigest(h)
}
