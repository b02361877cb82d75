package buildcontext

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

// Magic numbers of the compressions a context archive may use, and of tar
// itself ("ustar" at offset 257), checked first so that a plain archive whose
// first file name happens to start like a magic number is not mistaken.
var (
	tarMagic    = []byte("ustar")
	tarMagicOff = 257

	gzipMagic  = []byte{0x1f, 0x8b}
	bzip2Magic = []byte("BZh")
	xzMagic    = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	zstdMagic  = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// decompress returns r decompressed according to its first bytes; an
// uncompressed tar is returned as it is. The name of the file does not
// matter: stdin has none, and a ".tar" may well be gzipped.
func decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReader(r)
	head, err := br.Peek(tarMagicOff + len(tarMagic))
	if err != nil && err != io.EOF {
		return nil, err
	}
	switch {
	case len(head) > tarMagicOff && bytes.HasPrefix(head[tarMagicOff:], tarMagic):
		return io.NopCloser(br), nil
	case bytes.HasPrefix(head, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("reading gzip: %w", err)
		}
		return zr, nil
	case bytes.HasPrefix(head, bzip2Magic):
		return io.NopCloser(bzip2.NewReader(br)), nil
	case bytes.HasPrefix(head, xzMagic):
		zr, err := xz.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("reading xz: %w", err)
		}
		return io.NopCloser(zr), nil
	case bytes.HasPrefix(head, zstdMagic):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("reading zstd: %w", err)
		}
		return zr.IOReadCloser(), nil
	}
	return io.NopCloser(br), nil
}
