package layer

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TarWriter is the part of *tar.Writer that layer producers use.
type TarWriter interface {
	WriteHeader(hdr *tar.Header) error
	io.Writer
}

type options struct {
	compression Compression
	level       int
	oci         bool
	epoch       *time.Time
}

// Option configures a Writer.
type Option func(*options)

// WithCompression selects the compression and its level (0: the default).
func WithCompression(c Compression, level int) Option {
	return func(o *options) { o.compression, o.level = c, level }
}

// WithOCIMediaTypes makes the layer use OCI media types instead of Docker's.
// zstd layers are always OCI: Docker's schema has no zstd media type.
func WithOCIMediaTypes(oci bool) Option {
	return func(o *options) { o.oci = oci }
}

// WithEpoch sets every entry's modification time to t and drops access and
// change times, for reproducible layers.
func WithEpoch(t time.Time) Option {
	return func(o *options) { o.epoch = &t }
}

// Writer streams a tar into a compressed, hashed layer file.
type Writer struct {
	opts     options
	file     *os.File
	buf      *bufio.Writer
	out      io.Writer // the compressed stream: file, digest and size
	digest   hash.Hash
	diffID   hash.Hash
	size     counter
	comp     *adaptive
	tw       *tar.Writer
	entries  int
	finished bool

	// eStargz only: the uncompressed tar, spooled until Commit builds the
	// layer from it.
	tarFile *os.File
	tarBuf  *bufio.Writer
}

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// NewWriter starts a layer spooled to a new file in dir.
func NewWriter(dir string, opts ...Option) (*Writer, error) {
	o := options{compression: Gzip}
	for _, opt := range opts {
		opt(&o)
	}
	if _, err := ParseCompression(string(o.compression)); err != nil {
		return nil, err
	}
	if err := CheckLevel(o.compression, o.level); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, "layer-*.blob")
	if err != nil {
		return nil, fmt.Errorf("creating layer file: %w", err)
	}
	w := &Writer{opts: o, file: f, digest: sha256.New(), diffID: sha256.New()}
	w.buf = bufio.NewWriterSize(f, 1<<20)
	w.out = io.MultiWriter(w.buf, w.digest, &w.size)
	if o.compression == Estargz {
		// An eStargz blob ends with the table of contents of the whole
		// tar and is compressed in parts of it: it is built at Commit.
		if w.tarFile, err = os.CreateTemp(dir, "layer-*.tar"); err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, fmt.Errorf("creating layer file: %w", err)
		}
		w.tarBuf = bufio.NewWriterSize(w.tarFile, 1<<20)
		w.tw = tar.NewWriter(w.tarBuf)
		return w, nil
	}
	if w.comp, err = newAdaptive(w.out, o.compression, o.level); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("starting %s compressor: %w", o.compression, err)
	}
	w.tw = tar.NewWriter(io.MultiWriter(w.comp, w.diffID))
	return w, nil
}

// WriteHeader normalises hdr and writes it. User and group names are
// dropped (ids are what matters in an image) and, with WithEpoch, the times.
func (w *Writer) WriteHeader(hdr *tar.Header) error {
	h := *hdr
	h.Uname, h.Gname = "", ""
	h.AccessTime, h.ChangeTime = time.Time{}, time.Time{}
	if w.opts.epoch != nil {
		h.ModTime = *w.opts.epoch
	}
	// Let archive/tar pick the smallest format that holds the header; it
	// rounds ModTime to seconds unless PAX is needed anyway.
	h.Format = tar.FormatUnknown
	if h.PAXRecords != nil {
		h.PAXRecords = withoutTimes(h.PAXRecords)
	}
	w.entries++
	return w.tw.WriteHeader(&h)
}

func withoutTimes(rec map[string]string) map[string]string {
	out := make(map[string]string, len(rec))
	for k, v := range rec {
		switch k {
		case "atime", "ctime", "mtime":
			continue
		}
		out[k] = v
	}
	return out
}

// Write writes file content for the current entry.
func (w *Writer) Write(p []byte) (int, error) { return w.tw.Write(p) }

// Entries returns how many entries have been written.
func (w *Writer) Entries() int { return w.entries }

// Commit finishes the layer and returns it. The Writer must not be used after.
func (w *Writer) Commit() (*File, error) {
	if w.finished {
		return nil, errors.New("layer writer already finished")
	}
	w.finished = true
	defer w.removeTar()
	var (
		diffID      v1.Hash
		annotations map[string]string
	)
	err := w.tw.Close()
	switch {
	case w.comp != nil:
		// Closed even after an error: it stops the encoder's goroutines.
		if cerr := w.comp.Close(); err == nil {
			err = cerr
		}
		diffID = hashOf(w.diffID)
	case err == nil:
		err = w.tarBuf.Flush()
		if err == nil {
			diffID, annotations, err = w.buildEstargz()
		}
	}
	if err == nil {
		err = w.buf.Flush()
	}
	if err == nil {
		err = w.file.Close()
	} else {
		w.file.Close()
	}
	if err != nil {
		os.Remove(w.file.Name())
		return nil, fmt.Errorf("writing layer %s: %w", w.file.Name(), err)
	}
	return &File{
		path:        w.file.Name(),
		digest:      hashOf(w.digest),
		diffID:      diffID,
		size:        w.size.n,
		mediaType:   mediaType(w.opts.compression, w.opts.oci),
		annotations: annotations,
	}, nil
}

func hashOf(h hash.Hash) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", h.Sum(nil))}
}

// Abort discards the layer. It is safe to call after Commit (no-op).
func (w *Writer) Abort() {
	if w.finished {
		return
	}
	w.finished = true
	if w.comp != nil {
		w.comp.abort()
	}
	w.file.Close()
	os.Remove(w.file.Name())
	w.removeTar()
}

// removeTar deletes the spooled tar of an eStargz layer.
func (w *Writer) removeTar() {
	if w.tarFile != nil {
		w.tarFile.Close()
		os.Remove(w.tarFile.Name())
	}
}
