package layer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
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
// Decompression runs in a goroutine of its own and reads ahead of the
// consumer (2 MiB at most), so that on two cores the consumer — tar
// extraction, hashing — and decompression overlap instead of taking turns.
// The decompressors are klauspost's gzip, which is faster than the standard
// library's, and zstd in its single-goroutine mode (its own asynchronous
// stream mode cost more CPU and was slower in BenchmarkDecompress). A
// corrupt stream or a wrong checksum is an error from Read, after the data
// before it, as with compress/gzip.
//
// Close stops the goroutine; it does not close r. Call it even after an
// error: until then the goroutine may wait for the consumer.
func Decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(len(zstdMagic))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	var d io.Reader
	var closeD func()
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		z, err := gzip.NewReader(br)
		if err != nil {
			return nil, err
		}
		d, closeD = z, func() { z.Close() }
	case bytes.HasPrefix(head, zstdMagic):
		z, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		d, closeD = z, z.Close
	default:
		return io.NopCloser(br), nil
	}
	ra := newReadAhead(d)
	return readCloser{Reader: ra, close: func() error {
		ra.Close() // the decompressor is not read after this
		closeD()
		return nil
	}}, nil
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
