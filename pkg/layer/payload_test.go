package layer

import (
	"archive/tar"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// mixedPayload returns n bytes like a layer's content: incompressible
// stretches (binaries, compressed files), text and zeros (sparse files,
// padding), interleaved in segments of a few hundred KiB. The same seed
// gives the same bytes.
func mixedPayload(n int, seed uint64) []byte {
	rng := rand.New(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}))
	words := []string{"layer ", "image ", "build ", "kiln ", "tar ", "the ", "of ", "a ", "registry ",
		"compress ", "func ", "return ", "error ", "\n", "{\n\t", "}\n", "if err != nil ", "0x1f ", "/usr/lib/"}
	out := make([]byte, 0, n)
	for seg := 0; len(out) < n; seg++ {
		size := min(n-len(out), 128<<10+rng.IntN(384<<10))
		switch seg % 3 {
		case 0:
			start := len(out)
			out = out[:start+size]
			for i := start; i < len(out); i += 8 {
				v := rng.Uint64()
				for j := 0; j < 8 && i+j < len(out); j++ {
					out[i+j] = byte(v >> (8 * j))
				}
			}
		case 1:
			for end := len(out) + size; len(out) < end; {
				w := words[rng.IntN(len(words))]
				out = append(out, w[:min(len(w), end-len(out))]...)
			}
		default:
			out = append(out, make([]byte, size)...)
		}
	}
	return out
}

// writeFiles writes payload as files of a few sizes, in a fixed order, with
// a directory, a symlink and a hard link, and commits the layer.
func writeFiles(tb testing.TB, dir string, payload []byte, opts ...Option) *File {
	tb.Helper()
	w, err := NewWriter(dir, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	mtime := time.Unix(1700000000, 0)
	hdrs := []*tar.Header{
		{Name: "usr", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime},
		{Name: "usr/lib", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime},
	}
	for _, h := range hdrs {
		if err := w.WriteHeader(h); err != nil {
			tb.Fatal(err)
		}
	}
	sizes := []int{0, 1, 100, 4 << 10, 70 << 10, 1 << 20, 6 << 20}
	for i := 0; len(payload) > 0; i++ {
		n := min(sizes[i%len(sizes)], len(payload))
		h := &tar.Header{Name: "usr/lib/f" + strconv.Itoa(i), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(n), ModTime: mtime, Uid: i % 3}
		if err := w.WriteHeader(h); err != nil {
			tb.Fatal(err)
		}
		if _, err := w.Write(payload[:n]); err != nil {
			tb.Fatal(err)
		}
		payload = payload[n:]
	}
	for _, h := range []*tar.Header{
		{Name: "usr/lib/link", Typeflag: tar.TypeSymlink, Linkname: "f1", ModTime: mtime},
		{Name: "usr/lib/hard", Typeflag: tar.TypeLink, Linkname: "usr/lib/f2", ModTime: mtime},
		{Name: "usr/.wh.gone", Typeflag: tar.TypeReg, Mode: 0o644, ModTime: mtime},
	} {
		if err := w.WriteHeader(h); err != nil {
			tb.Fatal(err)
		}
	}
	l, err := w.Commit()
	if err != nil {
		tb.Fatal(err)
	}
	return l
}
