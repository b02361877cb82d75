package layer

import (
	"fmt"
	"io"
	"runtime"

	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// Compression names a layer compression.
type Compression string

// Supported compressions. Estargz layers are gzip layers (any gzip reader
// reads them) laid out for lazy pulling: see estargz.go.
const (
	Gzip    Compression = "gzip"
	Zstd    Compression = "zstd"
	Estargz Compression = "estargz"
)

// ParseCompression validates a --compression value.
func ParseCompression(s string) (Compression, error) {
	switch Compression(s) {
	case Gzip, Zstd, Estargz:
		return Compression(s), nil
	}
	return "", fmt.Errorf("unknown compression %q: use gzip, zstd or estargz", s)
}

// CheckLevel refuses a level the compression does not have, before any
// layer is written. 0 is always the compressor's default.
func CheckLevel(c Compression, level int) error {
	if c == Zstd || level == 0 {
		return nil // zstd maps every level to one of its four speeds
	}
	if level < gzip.HuffmanOnly || level > gzip.BestCompression {
		return fmt.Errorf("invalid %s compression level %d: use 1 (fastest) to 9 (smallest), or 0 for the default", c, level)
	}
	return nil
}

func mediaType(c Compression, oci bool) types.MediaType {
	switch {
	case c == Zstd:
		return types.OCILayerZStd
	case oci:
		return types.OCILayer
	default:
		return types.DockerLayer
	}
}

// How big layers are compressed on all cores.
//
// The compressed bytes depend only on the input, the compression and its
// level: never on the number of cores or on how the producer chunks its
// writes. That is what keeps --reproducible digests equal across machines,
// so every constant here is part of the output format.
const (
	// parallelThreshold is the uncompressed size from which a layer is
	// compressed in parallel. Smaller layers (most COPY layers) are
	// compressed by one goroutine once their size is known: starting
	// goroutines and cutting blocks would cost more than it saves.
	parallelThreshold = 4 << 20

	// gzipBlockSize is the size of the independent deflate blocks of a
	// parallel gzip layer (each primed with the previous block's last 16
	// KiB, as pigz does, so the ratio barely moves). The blocks are one
	// gzip member: any gzip reader reads the result.
	gzipBlockSize = 1 << 20

	// zstdWindow is the zstd window. The parallel encoder cuts jobs of 4
	// windows (2 MiB), each primed with the previous job's last 64 KiB, so
	// the window bounds the memory of the jobs in flight (and of decoders).
	// With the default window (8 MiB) the jobs were 32 MiB each and cost
	// three times the CPU.
	zstdWindow = 512 << 10

	// maxInflight bounds the gzip blocks compressed at once, and so the
	// memory a big layer costs (about 3 MiB a block).
	maxInflight = 4

	// zstdWorkers is how many zstd jobs are compressed at once, whatever
	// the core count: the encoder only cuts a stream into jobs with two
	// workers or more. Each more cost about 12 MiB of a build's peak RSS,
	// and two already compress faster than kiln reads and hashes files.
	zstdWorkers = 2
)

// inflight is how many gzip blocks are compressed at once: at least 2, so
// that one block is compressed while the previous one is written.
func inflight() int {
	return max(2, min(runtime.GOMAXPROCS(0), maxInflight))
}

// adaptive compresses a stream single-threaded while it is small and in
// parallel once it passes parallelThreshold. Until then it holds the
// stream in memory: the choice is made on the size alone, before a byte
// is compressed, so it does not depend on timing.
type adaptive struct {
	dst   io.Writer
	c     Compression
	level int
	head  [][]byte       // the stream so far, while below the threshold
	n     int            // its size
	w     io.WriteCloser // the chosen encoder
}

// headChunk is the largest chunk of adaptive.head. Chunks are never copied
// to grow, so a big layer's head costs 4 MiB of allocations, not twice
// that plus the copies.
const headChunk = 256 << 10

func newAdaptive(dst io.Writer, c Compression, level int) (*adaptive, error) {
	if err := CheckLevel(c, level); err != nil {
		return nil, err
	}
	return &adaptive{dst: dst, c: c, level: level}, nil
}

func (a *adaptive) Write(p []byte) (int, error) {
	if a.w == nil {
		if a.n+len(p) < parallelThreshold {
			a.hold(p)
			return len(p), nil
		}
		w, err := a.encoder(true)
		if err != nil {
			return 0, err
		}
		a.w = w
		if err := a.flushHead(); err != nil {
			return 0, err
		}
	}
	return a.w.Write(p)
}

func (a *adaptive) hold(p []byte) {
	a.n += len(p)
	for len(p) > 0 {
		last := len(a.head) - 1
		if last < 0 || len(a.head[last]) == cap(a.head[last]) {
			size := 4 << 10 // doubling up to headChunk
			if last >= 0 {
				size = 2 * cap(a.head[last])
			}
			a.head = append(a.head, make([]byte, 0, min(headChunk, max(size, len(p)))))
			last++
		}
		k := min(len(p), cap(a.head[last])-len(a.head[last]))
		a.head[last] = append(a.head[last], p[:k]...)
		p = p[k:]
	}
}

// Close compresses what is held (a small stream) and finishes the stream.
func (a *adaptive) Close() error {
	if a.w == nil {
		w, err := a.encoder(false)
		if err != nil {
			return err
		}
		a.w = w
		if err := a.flushHead(); err != nil {
			a.w.Close()
			return err
		}
	}
	return a.w.Close()
}

// abort drops the stream, stopping the encoder's goroutines if it has any.
func (a *adaptive) abort() {
	a.head, a.n = nil, 0
	if a.w != nil {
		a.w.Close()
	}
}

func (a *adaptive) flushHead() error {
	head := a.head
	a.head, a.n = nil, 0
	for _, b := range head {
		if _, err := a.w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

func (a *adaptive) encoder(parallel bool) (io.WriteCloser, error) {
	if a.c == Zstd {
		return newZstd(a.dst, a.level, parallel)
	}
	return newGzip(a.dst, a.level, parallel)
}

func newGzip(dst io.Writer, level int, parallel bool) (io.WriteCloser, error) {
	if level == 0 {
		level = gzip.DefaultCompression
	}
	if !parallel {
		return gzip.NewWriterLevel(dst, level)
	}
	w, err := pgzip.NewWriterLevel(dst, level)
	if err != nil {
		return nil, err
	}
	if err := w.SetConcurrency(gzipBlockSize, inflight()); err != nil {
		return nil, err
	}
	return parallelGzip{w}, nil
}

// parallelGzip is pgzip's writer, whose Close returns early after a write
// error and leaves its output goroutine waiting: Reset releases it.
type parallelGzip struct{ *pgzip.Writer }

func (p parallelGzip) Close() error {
	err := p.Writer.Close()
	if err != nil {
		p.Writer.Reset(io.Discard)
	}
	return err
}

// newZstd returns a zstd encoder; in parallel, in its job mode
// (WithConcurrentBlocks), which compresses jobs on several cores as one
// frame. Its stream mode with two goroutines (match finding, then entropy
// coding) gave nothing over one goroutine in BenchmarkCompress.
func newZstd(dst io.Writer, level int, parallel bool) (io.WriteCloser, error) {
	speed := zstd.SpeedDefault
	if level != 0 {
		speed = zstd.EncoderLevelFromZstd(level)
	}
	opts := []zstd.EOption{zstd.WithEncoderLevel(speed), zstd.WithWindowSize(zstdWindow)}
	if parallel {
		opts = append(opts, zstd.WithEncoderConcurrency(zstdWorkers), zstd.WithConcurrentBlocks(true))
	} else {
		opts = append(opts, zstd.WithEncoderConcurrency(1))
	}
	return zstd.NewWriter(dst, opts...)
}
