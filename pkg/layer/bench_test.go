package layer

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	ggcrtarball "github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// benchSize is the payload of the benchmarks: a big COPY or RUN layer.
const benchSize = 200 << 20

var benchPayload = sync.OnceValue(func() []byte { return mixedPayload(benchSize, 42) })

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// BenchmarkCompress compares the single-threaded and the parallel encoders
// on a big layer's bytes (no tar, no hashing, no file): MB/s of input, the
// CPU time an operation costs, and the compressed size as a ratio of the
// input. zstd/stream2 is the zstd encoder's two-goroutine stream mode,
// which kiln does not use (see newZstd).
func BenchmarkCompress(b *testing.B) {
	payload := benchPayload()
	encoders := []struct {
		name string
		new  func(io.Writer) (io.WriteCloser, error)
	}{
		{"gzip/single", func(w io.Writer) (io.WriteCloser, error) { return newGzip(w, 0, false) }},
		{"gzip/parallel", func(w io.Writer) (io.WriteCloser, error) { return newGzip(w, 0, true) }},
		{"zstd/single", func(w io.Writer) (io.WriteCloser, error) { return newZstd(w, 0, false) }},
		{"zstd/parallel", func(w io.Writer) (io.WriteCloser, error) { return newZstd(w, 0, true) }},
		{"zstd/stream2", func(w io.Writer) (io.WriteCloser, error) {
			return zstd.NewWriter(w, zstd.WithEncoderConcurrency(2), zstd.WithWindowSize(zstdWindow))
		}},
	}
	for _, e := range encoders {
		b.Run(e.name, func(b *testing.B) {
			b.SetBytes(int64(len(payload)))
			var out countingWriter
			cpu := cpuTime()
			for b.Loop() {
				out.n = 0
				w, err := e.new(&out)
				if err != nil {
					b.Fatal(err)
				}
				for p := payload; len(p) > 0; p = p[min(len(p), 32<<10):] {
					w.Write(p[:min(len(p), 32<<10)])
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric((cpuTime()-cpu).Seconds()/float64(b.N), "cpu-s/op")
			b.ReportMetric(float64(out.n)/float64(len(payload)), "ratio")
		})
	}
}

// cpuTime is the CPU time the process has used, all threads.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkWriter is a whole layer: tar entries in, normalised, compressed
// (in parallel, the payload being big), hashed twice and spooled to a file.
func BenchmarkWriter(b *testing.B) {
	payload := benchPayload()
	for _, c := range []Compression{Gzip, Zstd, Estargz} {
		b.Run(string(c), func(b *testing.B) {
			b.SetBytes(int64(len(payload)))
			dir := b.TempDir()
			var size int64
			cpu := cpuTime()
			for b.Loop() {
				l := writeFiles(b, dir, payload, WithCompression(c, 0))
				size, _ = l.Size()
				l.Remove()
			}
			b.ReportMetric((cpuTime()-cpu).Seconds()/float64(b.N), "cpu-s/op")
			b.ReportMetric(float64(size)/float64(len(payload)), "ratio")
		})
	}
}

// BenchmarkDecompress reads a big layer to its end with
// go-containerregistry's Uncompressed (the standard library's gzip),
// klauspost's readers in the consumer's goroutine, and Decompress. The
// consumer either hashes the tar (as a diffID check does) or extracts its
// files into a directory, which is where the overlap Decompress brings can
// show: the kernel's work of writing files runs while the next bytes are
// inflated.
func BenchmarkDecompress(b *testing.B) {
	payload := benchPayload()
	dir := b.TempDir()
	var tarball bytes.Buffer
	tw := tar.NewWriter(&tarball)
	sizes := []int{0, 100, 4 << 10, 70 << 10, 1 << 20, 6 << 20}
	for i, p := 0, payload; len(p) > 0; i++ {
		n := min(sizes[i%len(sizes)], len(p))
		tw.WriteHeader(&tar.Header{Name: "f" + strconv.Itoa(i), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(n)})
		tw.Write(p[:n])
		p = p[n:]
	}
	tw.Close()
	blobs := map[Compression]string{}
	for _, c := range []Compression{Gzip, Zstd} {
		var buf bytes.Buffer
		var w io.WriteCloser
		if c == Zstd {
			w, _ = zstd.NewWriter(&buf) // in one stream, as other tools write them
		} else {
			w, _ = gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
		}
		w.Write(tarball.Bytes())
		w.Close()
		blobs[c] = filepath.Join(dir, string(c))
		if err := os.WriteFile(blobs[c], buf.Bytes(), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	readers := []struct {
		name string
		c    Compression
		open func(path string) (io.ReadCloser, error)
	}{
		{"gzip/ggcr-stdlib", Gzip, func(path string) (io.ReadCloser, error) {
			l, err := ggcrtarball.LayerFromFile(path)
			if err != nil {
				return nil, err
			}
			return l.Uncompressed()
		}},
		{"gzip/klauspost", Gzip, func(path string) (io.ReadCloser, error) {
			f, err := os.Open(path)
			if err != nil {
				return nil, err
			}
			z, err := gzip.NewReader(f)
			if err != nil {
				return nil, err
			}
			return readCloser{Reader: z, close: f.Close}, nil
		}},
		{"gzip/Decompress", Gzip, openDecompress},
		{"zstd/klauspost-sync", Zstd, func(path string) (io.ReadCloser, error) {
			f, err := os.Open(path)
			if err != nil {
				return nil, err
			}
			d, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1))
			if err != nil {
				return nil, err
			}
			return readCloser{Reader: d, close: func() error { d.Close(); return f.Close() }}, nil
		}},
		{"zstd/klauspost-async", Zstd, func(path string) (io.ReadCloser, error) {
			f, err := os.Open(path)
			if err != nil {
				return nil, err
			}
			d, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(2)) // its own stream read-ahead
			if err != nil {
				return nil, err
			}
			return readCloser{Reader: d, close: func() error { d.Close(); return f.Close() }}, nil
		}},
		{"zstd/Decompress", Zstd, openDecompress},
	}
	for _, consumer := range []string{"hash", "extract"} {
		for _, r := range readers {
			b.Run(consumer+"/"+r.name, func(b *testing.B) {
				b.SetBytes(int64(tarball.Len()))
				out := filepath.Join(dir, "out")
				cpu := cpuTime()
				for b.Loop() {
					rc, err := r.open(blobs[r.c])
					if err != nil {
						b.Fatal(err)
					}
					if consumer == "hash" {
						_, err = io.Copy(sha256.New(), struct{ io.Reader }{rc}) // Read calls, as tar.Reader makes
					} else {
						err = extract(rc, out)
					}
					rc.Close()
					if err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					os.RemoveAll(out)
					b.StartTimer()
				}
				b.ReportMetric((cpuTime()-cpu).Seconds()/float64(b.N), "cpu-s/op")
			})
		}
	}
}

// extract writes the regular files of a flat tar into dir.
func extract(r io.Reader, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		f, err := os.OpenFile(filepath.Join(dir, h.Name), os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o644)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, tr)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
}

func openDecompress(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	d, err := Decompress(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return readCloser{Reader: d, close: func() error { d.Close(); return f.Close() }}, nil
}
