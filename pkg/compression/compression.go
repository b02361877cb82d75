package compression

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Format is a stream compression.
type Format string

// The formats Detect knows. None is an uncompressed (or unknown) stream.
const (
	None  Format = "none"
	Gzip  Format = "gzip"
	Bzip2 Format = "bzip2"
	Xz    Format = "xz"
	Zstd  Format = "zstd"
)

var magics = []struct {
	format Format
	magic  []byte
}{
	{Gzip, []byte{0x1f, 0x8b}},
	{Bzip2, []byte("BZh")},
	{Xz, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}},
	{Zstd, []byte{0x28, 0xb5, 0x2f, 0xfd}},
}

// tarMagic is "ustar" at offset 257 of a tar header. It is checked first,
// so that a plain archive whose first file name happens to start like a
// magic number is not taken for a compressed stream.
var (
	tarMagic    = []byte("ustar")
	tarMagicOff = 257
)

// peekLen is how much of a stream Detect needs.
const peekLen = 262

// Detect tells the compression of a stream from its first bytes (up to 262).
func Detect(head []byte) Format {
	if len(head) >= tarMagicOff+len(tarMagic) && bytes.HasPrefix(head[tarMagicOff:], tarMagic) {
		return None
	}
	for _, m := range magics {
		if bytes.HasPrefix(head, m.magic) {
			return m.format
		}
	}
	return None
}

// Decompress returns r decompressed according to its first bytes, and the
// format found; an uncompressed stream is returned as it is. Close releases
// the decompressor, not r.
func Decompress(r io.Reader) (io.ReadCloser, Format, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(peekLen)
	if err != nil && err != io.EOF {
		return nil, None, err
	}
	f := Detect(head)
	switch f {
	case Gzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, f, fmt.Errorf("reading gzip: %w", err)
		}
		return zr, f, nil
	case Bzip2:
		return io.NopCloser(bzip2.NewReader(br)), f, nil
	case Xz:
		zr, err := xz.NewReader(br)
		if err != nil {
			return nil, f, fmt.Errorf("reading xz: %w", err)
		}
		return io.NopCloser(zr), f, nil
	case Zstd:
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, f, fmt.Errorf("reading zstd: %w", err)
		}
		return zr.IOReadCloser(), f, nil
	}
	return io.NopCloser(br), None, nil
}
