package layer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// Read-ahead of Decompress: how much decompressed data may wait for the
// consumer. Enough to keep the decompressing goroutine busy while the
// consumer writes a few files; small enough to cost little per layer.
const (
	readAheadBlockSize = 512 << 10
	readAheadBlocks    = 4
)

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// Decompress returns the content of a layer blob read from r: gzip (also
// several gzip members one after the other, as in eStargz), zstd, or a tar
// that is not compressed, told apart by their first bytes rather than by a
// media type, which registries sometimes get wrong.
//
// Decompression runs in goroutines of its own and reads ahead of the
// consumer (a few MiB at most), so that on two cores the consumer — tar
// extraction, hashing — and decompression overlap instead of taking turns.
// gzip is inflated by klauspost's deflate (pgzip's reader), which is faster
// than the standard library's, with the CRC checked on the side; zstd by
// klauspost's decoder in its asynchronous stream mode. A corrupt stream or a
// wrong checksum is an error from Read, as with compress/gzip.
//
// Close stops the goroutines and releases the buffers; it does not close r.
// Call it even after an error.
func Decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(len(zstdMagic))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		return pgzip.NewReaderN(br, readAheadBlockSize, readAheadBlocks)
	case bytes.HasPrefix(head, zstdMagic):
		d, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(max(2, min(runtime.GOMAXPROCS(0), 4))))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	default:
		return io.NopCloser(br), nil
	}
}

// Uncompressed is l.Uncompressed() through Decompress: it opens l's
// compressed blob and decompresses it ahead of the reader. Close closes
// both. It suits readers that read a layer from start to end (extraction):
// one that stops early still paid for up to the read-ahead.
func Uncompressed(l v1.Layer) (io.ReadCloser, error) {
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	d, err := Decompress(rc)
	if err != nil {
		rc.Close()
		if h, herr := l.Digest(); herr == nil {
			return nil, fmt.Errorf("layer %s: %w", h, err)
		}
		return nil, err
	}
	return readCloser{Reader: d, close: func() error {
		err := d.Close()
		if cerr := rc.Close(); cerr != nil {
			return cerr
		}
		return err
	}}, nil
}
