package output

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Format is the family of media types the image is written with.
type Format string

const (
	// FormatAsBuilt keeps the media types of the build (the base image's).
	FormatAsBuilt Format = ""
	FormatDocker  Format = "docker"
	FormatOCI     Format = "oci"
)

// ParseFormat parses --image-format.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case FormatAsBuilt, FormatDocker, FormatOCI:
		return f, nil
	}
	return "", fmt.Errorf("invalid --image-format %q: use docker or oci", s)
}

// layerTypes maps each layer media type to its equivalent in the other
// family; zstd layers exist only in OCI.
var layerTypes = map[Format]map[types.MediaType]types.MediaType{
	FormatOCI: {
		types.DockerLayer:             types.OCILayer,
		types.DockerUncompressedLayer: types.OCIUncompressedLayer,
		types.DockerForeignLayer:      types.OCIRestrictedLayer,
	},
	FormatDocker: {
		types.OCILayer:             types.DockerLayer,
		types.OCIUncompressedLayer: types.DockerUncompressedLayer,
		types.OCIRestrictedLayer:   types.DockerForeignLayer,
	},
}

// Convert returns img with the media types of format f and annotations
// on its manifest. The layers and the config are the same bytes: only the
// manifest changes, so nothing is recompressed.
func Convert(img v1.Image, f Format, annotations map[string]string) (v1.Image, error) {
	if f == FormatAsBuilt && len(annotations) == 0 {
		return img, nil
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	m = m.DeepCopy()
	if f == FormatAsBuilt {
		f = FormatDocker
		if m.MediaType == types.OCIManifestSchema1 {
			f = FormatOCI
		}
	}
	if len(annotations) > 0 && f == FormatDocker {
		return nil, fmt.Errorf("--annotation needs an OCI image (Docker manifests have no annotations): add --image-format=oci")
	}
	if f == FormatOCI {
		m.MediaType, m.Config.MediaType = types.OCIManifestSchema1, types.OCIConfigJSON
	} else {
		m.MediaType, m.Config.MediaType = types.DockerManifestSchema2, types.DockerConfigJSON
	}
	for i, d := range m.Layers {
		if to, ok := layerTypes[f][d.MediaType]; ok {
			m.Layers[i].MediaType = to
		} else if f == FormatDocker && d.MediaType == types.OCILayerZStd {
			return nil, fmt.Errorf("layer %s is zstd-compressed, which only OCI images can hold: use --image-format=oci or --compression=gzip", d.Digest)
		}
	}
	if len(annotations) > 0 {
		if m.Annotations == nil {
			m.Annotations = map[string]string{}
		}
		maps.Copy(m.Annotations, annotations)
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if m, err = v1.ParseManifest(bytes.NewReader(raw)); err != nil {
		return nil, err
	}
	return &convertedImage{Image: img, manifest: m, raw: raw}, nil
}

// convertedImage is an image with a rewritten manifest.
type convertedImage struct {
	v1.Image
	manifest *v1.Manifest
	raw      []byte
}

func (i *convertedImage) MediaType() (types.MediaType, error) { return i.manifest.MediaType, nil }
func (i *convertedImage) Manifest() (*v1.Manifest, error)     { return i.manifest.DeepCopy(), nil }
func (i *convertedImage) RawManifest() ([]byte, error)        { return i.raw, nil }
func (i *convertedImage) Size() (int64, error)                { return int64(len(i.raw)), nil }

func (i *convertedImage) Digest() (v1.Hash, error) {
	h, _, err := v1.SHA256(bytes.NewReader(i.raw))
	return h, err
}

func (i *convertedImage) Layers() ([]v1.Layer, error) {
	layers, err := i.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(layers))
	for n, l := range layers {
		out[n] = &typedLayer{Layer: l, mediaType: i.manifest.Layers[n].MediaType}
	}
	return out, nil
}

func (i *convertedImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	if h == i.manifest.Config.Digest {
		return partial.ConfigLayer(i)
	}
	l, err := i.Image.LayerByDigest(h)
	if err != nil {
		return nil, err
	}
	for _, d := range i.manifest.Layers {
		if d.Digest == h {
			return &typedLayer{Layer: l, mediaType: d.MediaType}, nil
		}
	}
	return l, nil
}

// typedLayer is a layer under another media type of the same bytes.
type typedLayer struct {
	v1.Layer
	mediaType types.MediaType
}

func (l *typedLayer) MediaType() (types.MediaType, error) { return l.mediaType, nil }
