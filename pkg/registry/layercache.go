package registry

import (
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// layerCache keeps compressed layers in DIR/blobs/ALGORITHM/HEX, as an OCI
// layout does. go-containerregistry's pkg/v1/cache writes straight to the
// final file, so an interrupted read leaves a truncated layer that later
// builds take for the real one; here an entry appears, by rename, only once
// its whole content was read and matched its digest.
type layerCache struct {
	dir    string
	log    logrus.FieldLogger
	client *Client
}

// transfer reports the download of a layer.
func (c *layerCache) transfer(digest v1.Hash) *transferProgress {
	return c.client.newTransfer("pull "+digest.String(), "pulling layer "+digest.String(), false)
}

func (c *layerCache) path(h v1.Hash) string {
	return filepath.Join(c.dir, "blobs", h.Algorithm, h.Hex)
}

// wrap routes l's content through the cache.
func (c *layerCache) wrap(l v1.Layer) v1.Layer {
	return &cachedLayer{Layer: l, cache: c}
}

// cachedLayer reads its content from the cache, filling it on a miss. Its
// digest, diffID, size and media type are the registry layer's, known from
// the manifest and config without a download.
type cachedLayer struct {
	v1.Layer
	cache *layerCache
}

// Descriptor keeps the manifest's descriptor (URLs, annotations).
func (l *cachedLayer) Descriptor() (*v1.Descriptor, error) {
	return partial.Descriptor(l.Layer)
}

func (l *cachedLayer) Compressed() (io.ReadCloser, error) {
	digest, err := l.Layer.Digest()
	if err != nil {
		return nil, err
	}
	path := l.cache.path(digest)
	f, err := os.Open(path)
	if err == nil {
		return f, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("layer %s: reading the layer cache: %w", digest, err)
	}
	rc, err := l.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	size, _ := l.Layer.Size()
	rc = &progressReader{ReadCloser: rc, total: size, progress: l.cache.transfer(digest)}
	l.cache.client.cleanPartials(filepath.Dir(path))
	fill, err := newCacheFill(rc, digest, path, l.cache.log, &l.cache.client.pendingFills)
	if err != nil {
		l.cache.log.Warnf("layer %s is not cached: %v", digest, err)
		return rc, nil
	}
	return fill, nil
}

// Uncompressed decompresses Compressed, so that it goes through the cache
// too.
func (l *cachedLayer) Uncompressed() (io.ReadCloser, error) {
	ul, err := partial.CompressedToLayer(l)
	if err != nil {
		return nil, err
	}
	return ul.Uncompressed()
}

// cacheFill passes a layer's content through to its reader while writing it
// to a temporary file that becomes the cache entry at EOF if the content
// matches the digest. The cache is an optimisation: failing to write it
// costs a warning, not the read.
type cacheFill struct {
	pending *sync.WaitGroup
	src     io.ReadCloser
	tmp     *os.File
	hash    hash.Hash
	digest  v1.Hash
	path    string
	log     logrus.FieldLogger
	done    bool // committed or abandoned
}

func newCacheFill(src io.ReadCloser, digest v1.Hash, path string, log logrus.FieldLogger, pending *sync.WaitGroup) (*cacheFill, error) {
	h, err := v1.Hasher(digest.Algorithm)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), digest.Hex+partialInfix+"*")
	if err != nil {
		return nil, err
	}
	// Locked while it is written: cleanPartials leaves it alone.
	if err := unix.Flock(int(tmp.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, err
	}
	return &cacheFill{src: src, tmp: tmp, hash: h, digest: digest, path: path, log: log, pending: pending}, nil
}

func (c *cacheFill) Read(p []byte) (int, error) {
	n, err := c.src.Read(p)
	if c.done {
		return n, err
	}
	c.hash.Write(p[:n])
	if _, werr := c.tmp.Write(p[:n]); werr != nil {
		c.abandon(werr)
		return n, err
	}
	if err == io.EOF {
		got := v1.Hash{Algorithm: c.digest.Algorithm, Hex: hex.EncodeToString(c.hash.Sum(nil))}
		if got != c.digest {
			c.abandon(nil)
			return n, fmt.Errorf("layer %s: downloaded content has digest %s", c.digest, got)
		}
		c.commit()
	}
	return n, err
}

// commit renames the complete file into place, in the background: it is
// synced first (after a crash, an entry renamed but not yet written would be
// served as the layer), and the reader, who has the content, need not wait
// for the disk. Client.Wait waits for commits in flight.
func (c *cacheFill) commit() {
	c.done = true
	c.pending.Add(1)
	go func() {
		defer c.pending.Done()
		err := c.tmp.Sync()
		if cerr := c.tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(c.tmp.Name(), c.path)
		}
		if err != nil {
			os.Remove(c.tmp.Name())
			c.log.Warnf("layer %s is not cached: %v", c.digest, err)
		}
	}()
}

// abandon drops the partial entry, warning about err if there is one.
func (c *cacheFill) abandon(err error) {
	c.done = true
	c.tmp.Close()
	os.Remove(c.tmp.Name())
	if err != nil {
		c.log.Warnf("layer %s is not cached: %v", c.digest, err)
	}
}

// partialInfix marks a cache entry being written.
const partialInfix = ".partial-"

// cleanPartials removes, once per directory and client, the partial
// entries of downloads that died: those no process holds locked.
func (c *Client) cleanPartials(dir string) {
	if _, done := c.cleanedDirs.LoadOrStore(dir, true); done {
		return
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !strings.Contains(e.Name(), partialInfix) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			os.Remove(p)
		}
		f.Close()
	}
}

// closeDrainLimit bounds what Close reads to finish an entry. A tar reader
// stops at the end-of-archive marker, before the padding and the compressed
// stream's trailer: a few bytes that decide whether the layer gets cached.
const closeDrainLimit = 1 << 20

// Close finishes the entry if little is left to read, and drops it
// otherwise: a reader that gave up early must not cost a download.
func (c *cacheFill) Close() error {
	if !c.done {
		if _, err := io.CopyN(io.Discard, c, closeDrainLimit); err != nil && err != io.EOF {
			c.log.Debugf("layer %s: finishing the cache entry: %v", c.digest, err)
		}
		if !c.done {
			c.abandon(nil)
		}
	}
	return c.src.Close()
}
