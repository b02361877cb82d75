package layer

import (
	"fmt"
	"io"
	"strconv"
	"sync"

	"github.com/containerd/stargz-snapshotter/estargz"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
)

// eStargz layers are gzip layers whose files are compressed one gzip member
// each and indexed by a table of contents (TOC) at the end of the blob, so
// that a snapshotter can mount the image before pulling it and fetch files
// by HTTP range requests. The stargz snapshotter finds the TOC through two
// annotations of the layer's descriptor in the manifest.
const (
	// AnnotationTOCDigest is the digest of the uncompressed TOC JSON, which
	// the snapshotter verifies the TOC against.
	AnnotationTOCDigest = estargz.TOCJSONDigestAnnotation
	// AnnotationUncompressedSize is the size of the decompressed layer.
	AnnotationUncompressedSize = estargz.StoreUncompressedSizeAnnotation
)

// estargzParts is how many parts a big eStargz layer is cut into and
// compressed in parallel. The parts decide where gzip members start, so the
// number is fixed (not the core count) to keep digests reproducible; small
// layers are one part.
const estargzParts = 4

// buildEstargz turns the spooled tar into an eStargz blob written to w.out,
// and returns the blob's diffID (the tar it decompresses to: the layer's
// entries behind a landmark file, then the TOC) and its annotations.
//
// estargz keeps the entries' headers, so the mtimes WriteHeader set stay;
// the landmark and TOC entries it adds have no timestamp. It moves no entry
// (there are no prioritised files), so the order is the producer's.
//
// estargz.Build compresses its parts into temporary files of $TMPDIR (it
// has no option for their directory) and removes them when the blob is
// closed.
func (w *Writer) buildEstargz() (v1.Hash, map[string]string, error) {
	info, err := w.tarFile.Stat()
	if err != nil {
		return v1.Hash{}, nil, err
	}
	parts := 1
	if info.Size() >= parallelThreshold {
		parts = estargzParts
	}
	level := w.opts.level
	if level == 0 {
		level = gzip.DefaultCompression
	}
	blob, err := estargz.Build(io.NewSectionReader(w.tarFile, 0, info.Size()),
		estargz.WithCompression(newEstargzGzip(level)),
		estargz.WithParallelism(parts))
	if err != nil {
		return v1.Hash{}, nil, fmt.Errorf("building eStargz layer: %w", err)
	}
	_, err = io.Copy(w.out, blob)
	if err != nil {
		// The blob is produced by a goroutine that only stops at its end.
		io.Copy(io.Discard, blob)
	}
	if cerr := blob.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return v1.Hash{}, nil, fmt.Errorf("building eStargz layer: %w", err)
	}
	size, err := blob.UncompressedSize()
	if err != nil {
		return v1.Hash{}, nil, err
	}
	diffID, err := v1.NewHash(blob.DiffID().String())
	if err != nil {
		return v1.Hash{}, nil, fmt.Errorf("eStargz diffID: %w", err)
	}
	return diffID, map[string]string{
		AnnotationTOCDigest:        blob.TOCDigest().String(),
		AnnotationUncompressedSize: strconv.FormatInt(size, 10),
	}, nil
}

// estargzGzip is estargz's gzip format with klauspost's gzip, which is
// faster than the standard library's: estargz asks for a new writer for
// every file, so writers are reused through a pool. The TOC and footer are
// written by estargz's own code.
type estargzGzip struct {
	*estargz.GzipCompressor
	*estargz.GzipDecompressor
	writers *sync.Pool
}

func newEstargzGzip(level int) *estargzGzip {
	return &estargzGzip{
		GzipCompressor:   estargz.NewGzipCompressorWithLevel(level),
		GzipDecompressor: &estargz.GzipDecompressor{},
		writers: &sync.Pool{New: func() any {
			w, _ := gzip.NewWriterLevel(nil, level) // level checked by NewWriter
			return w
		}},
	}
}

// Writer implements estargz.Compressor.
func (c *estargzGzip) Writer(w io.Writer) (estargz.WriteFlushCloser, error) {
	z := c.writers.Get().(*gzip.Writer)
	z.Reset(w)
	return &pooledGzip{Writer: z, pool: c.writers}, nil
}

// Reader implements estargz.Decompressor: estargz decompresses the whole
// blob once to compute its diffID.
func (c *estargzGzip) Reader(r io.Reader) (io.ReadCloser, error) {
	return gzip.NewReader(r)
}

type pooledGzip struct {
	*gzip.Writer
	pool *sync.Pool
}

func (p *pooledGzip) Close() error {
	err := p.Writer.Close()
	if err == nil {
		p.pool.Put(p.Writer)
	}
	p.Writer = nil
	return err
}
