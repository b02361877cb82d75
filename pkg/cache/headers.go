package cache

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
)

// A layer's headers are kept in the cache so that a rebuild which runs a
// COPY on a large base (kaniko does not cache COPY by default) learns the
// base's tree without downloading and decompressing it. They are an
// entry like a step's: a layer holding the same tar headers with no
// content, each regular file's size in a PAX record of its own.

// sizeRecord carries a regular file's size in a headers entry.
const sizeRecord = "KILN.size"

// MaxHeaders bounds the entries read from a headers entry: a damaged or
// hostile cache cannot make a build hold more than this many.
const MaxHeaders = 4 << 20

// HeadersKey is the key of the headers of the layer whose uncompressed
// digest is diffID.
func HeadersKey(diffID v1.Hash) string {
	return NewKey("LAYER-HEADERS").String("diffid", diffID.String()).Sum()
}

// HeadersLayer encodes tar headers as a layer with no file content.
func HeadersLayer(headers []*tar.Header) (v1.Layer, error) {
	// Compressed as it is written: the list of a big layer is ten times
	// smaller gzipped, and only the compressed bytes are held.
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, h := range headers {
		c := *h
		c.PAXRecords = make(map[string]string, len(h.PAXRecords)+1)
		for k, v := range h.PAXRecords {
			c.PAXRecords[k] = v
		}
		if isRegular(&c) {
			c.PAXRecords[sizeRecord] = strconv.FormatInt(c.Size, 10)
			c.Size = 0
		}
		c.Format = tar.FormatPAX
		if err := tw.WriteHeader(&c); err != nil {
			return nil, fmt.Errorf("encoding the header of %q: %w", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// ReadHeaders decodes a layer written by HeadersLayer. An entry that is not
// one is ErrCorrupt.
func ReadHeaders(l v1.Layer) ([]*tar.Header, error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, corrupt("headers: %v", err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var headers []*tar.Header
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return headers, nil
		}
		if err != nil {
			return nil, corrupt("headers: %v", err)
		}
		if len(headers) == MaxHeaders {
			return nil, corrupt("headers: more than %d entries", MaxHeaders)
		}
		if h.Size != 0 {
			return nil, corrupt("headers: entry %q has content", h.Name)
		}
		if isRegular(h) {
			size, err := strconv.ParseInt(h.PAXRecords[sizeRecord], 10, 64)
			if err != nil || size < 0 {
				return nil, corrupt("headers: entry %q has no valid size", h.Name)
			}
			h.Size = size
		}
		delete(h.PAXRecords, sizeRecord)
		headers = append(headers, h)
	}
}

// isRegular: tar.Reader reports the old regular-file type as TypeReg.
func isRegular(h *tar.Header) bool { return h.Typeflag == tar.TypeReg }
