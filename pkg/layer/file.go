package layer

import (
	"fmt"
	"io"
	"maps"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// File is a v1.Layer whose compressed blob is a file on disk, with digest,
// diffID and size computed when it was written.
type File struct {
	path      string
	digest    v1.Hash
	diffID    v1.Hash
	size      int64
	mediaType types.MediaType
	// annotations go on the layer's descriptor in the manifest.
	annotations map[string]string
}

var _ Annotated = (*File)(nil)

// Annotated is a layer whose descriptor in the manifest carries
// annotations: image assembly puts them there. A wrapper of a File must
// keep the method for an eStargz layer to stay lazily pullable.
type Annotated interface {
	v1.Layer
	Annotations() map[string]string
}

// Path returns the blob file.
func (f *File) Path() string { return f.path }

// Digest implements v1.Layer.
func (f *File) Digest() (v1.Hash, error) { return f.digest, nil }

// DiffID implements v1.Layer.
func (f *File) DiffID() (v1.Hash, error) { return f.diffID, nil }

// Size implements v1.Layer.
func (f *File) Size() (int64, error) { return f.size, nil }

// MediaType implements v1.Layer.
func (f *File) MediaType() (types.MediaType, error) { return f.mediaType, nil }

// Compressed implements v1.Layer.
func (f *File) Compressed() (io.ReadCloser, error) {
	r, err := os.Open(f.path)
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", f.digest, err)
	}
	return r, nil
}

// Uncompressed implements v1.Layer. It decompresses ahead of the reader,
// in a goroutine of its own (see Decompress).
func (f *File) Uncompressed() (io.ReadCloser, error) { return Uncompressed(f) }

// Annotations returns the annotations the layer's descriptor in the
// manifest must carry (eStargz: the TOC digest and uncompressed size), or
// nil.
func (f *File) Annotations() map[string]string {
	return maps.Clone(f.annotations)
}

// Remove deletes the blob file.
func (f *File) Remove() error { return os.Remove(f.path) }

type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }
