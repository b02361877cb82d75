package layer

import (
	"archive/tar"
	"bytes"
	stdgzip "compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// compress runs payload through the layer compressor in writes of chunk
// bytes, with GOMAXPROCS set to procs.
func compress(t *testing.T, c Compression, level int, payload []byte, chunk, procs int) []byte {
	t.Helper()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
	var out bytes.Buffer
	a, err := newAdaptive(&out, c, level)
	if err != nil {
		t.Fatal(err)
	}
	for p := payload; len(p) > 0; {
		n := min(chunk, len(p))
		if _, err := a.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// decompressOne decompresses exactly one gzip member or one zstd stream
// with the reference readers, failing if anything follows it.
func decompressOne(t *testing.T, c Compression, blob []byte) []byte {
	t.Helper()
	r := bytes.NewReader(blob)
	var got []byte
	var err error
	switch c {
	case Zstd:
		var d *zstd.Decoder
		if d, err = zstd.NewReader(r, zstd.WithDecoderConcurrency(1)); err != nil {
			t.Fatal(err)
		}
		got, err = io.ReadAll(d)
		d.Close()
	default:
		var z *stdgzip.Reader
		if z, err = stdgzip.NewReader(r); err != nil {
			t.Fatal(err)
		}
		z.Multistream(false)
		got, err = io.ReadAll(z)
		if err == nil && r.Len() != 0 {
			err = fmt.Errorf("%d bytes after the gzip member: not one gzip stream", r.Len())
		}
	}
	if err != nil {
		t.Fatalf("%s: decompressing: %v", c, err)
	}
	return got
}

func TestParallelCompressionIsReproducible(t *testing.T) {
	// Several gzip blocks and zstd jobs, and a partial last one.
	payload := mixedPayload(3*parallelThreshold+12345, 1)
	for _, c := range []Compression{Gzip, Zstd} {
		var want []byte
		for _, procs := range []int{1, 2, 4} {
			for _, chunk := range []int{len(payload), 64 << 10, 1000 + procs} {
				got := compress(t, c, 0, payload, chunk, procs)
				if want == nil {
					want = got
					if d := decompressOne(t, c, got); !bytes.Equal(d, payload) {
						t.Fatalf("%s: decompressed content differs from the input", c)
					}
					continue
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s: GOMAXPROCS=%d, writes of %d bytes: output %x, want %x (%d and %d bytes)",
						c, procs, chunk, sha256.Sum256(got), sha256.Sum256(want), len(got), len(want))
				}
			}
		}
	}
}

func TestSmallLayersAreCompressedSingleThreaded(t *testing.T) {
	payload := mixedPayload(parallelThreshold, 2)
	small, big := payload[:parallelThreshold-1], payload

	var single bytes.Buffer
	g, _ := gzip.NewWriterLevel(&single, gzip.DefaultCompression)
	g.Write(small)
	g.Close()
	if got := compress(t, Gzip, 0, small, 32<<10, 4); !bytes.Equal(got, single.Bytes()) {
		t.Errorf("gzip: a layer below the threshold is not compressed by the single-threaded encoder")
	}
	var blocks bytes.Buffer
	p, _ := pgzip.NewWriterLevel(&blocks, gzip.DefaultCompression)
	p.SetConcurrency(gzipBlockSize, 3)
	p.Write(big)
	p.Close()
	if got := compress(t, Gzip, 0, big, 32<<10, 4); !bytes.Equal(got, blocks.Bytes()) {
		t.Errorf("gzip: a layer at the threshold is not compressed in %d-byte blocks", gzipBlockSize)
	}

	zstdSingle := func(p []byte) []byte {
		var out bytes.Buffer
		z, _ := zstd.NewWriter(&out, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(zstdWindow))
		z.Write(p)
		z.Close()
		return out.Bytes()
	}
	if got := compress(t, Zstd, 0, small, 32<<10, 4); !bytes.Equal(got, zstdSingle(small)) {
		t.Errorf("zstd: a layer below the threshold is not compressed by the single-threaded encoder")
	}
	// Each job restarts its matching from the end of the previous one, so a
	// big layer's bytes are not the single-threaded encoder's.
	bigger := mixedPayload(3*parallelThreshold, 2)
	if got := compress(t, Zstd, 0, bigger, 32<<10, 4); bytes.Equal(got, zstdSingle(bigger)) {
		t.Errorf("zstd: a layer of several jobs is compressed by the single-threaded encoder")
	}
}

func TestCompressionLevels(t *testing.T) {
	payload := mixedPayload(parallelThreshold+parallelThreshold/2, 3)
	for _, c := range []struct {
		comp        Compression
		fast, small int
	}{{Gzip, 1, 9}, {Zstd, 1, 7}} {
		for _, n := range []int{parallelThreshold / 2, len(payload)} { // single-threaded, parallel
			fast := compress(t, c.comp, c.fast, payload[:n], 1<<20, 2)
			small := compress(t, c.comp, c.small, payload[:n], 1<<20, 2)
			if len(small) >= len(fast) {
				t.Errorf("%s, %d bytes: level %d gave %d bytes, level %d %d bytes", c.comp, n, c.small, len(small), c.fast, len(fast))
			}
			if d := decompressOne(t, c.comp, small); !bytes.Equal(d, payload[:n]) {
				t.Errorf("%s level %d: content differs", c.comp, c.small)
			}
		}
	}
	for _, c := range []struct {
		comp  Compression
		level int
	}{{Gzip, 10}, {Gzip, -3}, {Estargz, 12}} {
		_, err := NewWriter(t.TempDir(), WithCompression(c.comp, c.level))
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("level %d", c.level)) {
			t.Errorf("%s level %d: error %v", c.comp, c.level, err)
		}
	}
	if _, err := NewWriter(t.TempDir(), WithCompression("lz4", 0)); err == nil || !strings.Contains(err.Error(), `"lz4"`) {
		t.Errorf("unknown compression: error %v", err)
	}
}

func TestAbortStopsTheEncoders(t *testing.T) {
	payload := mixedPayload(3*parallelThreshold, 4)
	for _, c := range []Compression{Gzip, Zstd} {
		before := runtime.NumGoroutine()
		dir := t.TempDir()
		w, err := NewWriter(dir, WithCompression(c, 0))
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteHeader(&tar.Header{Name: "big", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(payload))}); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(payload); err != nil {
			t.Fatal(err)
		}
		w.Abort()
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			t.Errorf("%s: %d goroutines after Abort, %d before", c, n, before)
		}
		if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) > 0 {
			t.Errorf("%s: Abort left %q", c, left)
		}
	}
}
