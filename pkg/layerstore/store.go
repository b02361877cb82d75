package layerstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/pkg/layer"
)

// Store is a directory of extracted layers.
type Store struct {
	dir   string
	limit int64
	log   logrus.FieldLogger
	now   func() time.Time

	trimMu sync.Mutex
}

// Extract writes the uncompressed tar r (a layer) into the empty
// directory dir.
type Extract func(ctx context.Context, dir string, r io.Reader) error

// Open opens (creating it) the store in dir, whose layers are trimmed to
// limit bytes (0: no limit).
func Open(dir string, limit int64, log logrus.FieldLogger) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("layer store %q: %w", dir, err)
	}
	return &Store{dir: dir, limit: limit, log: log, now: time.Now}, nil
}

// idLen is how much of a diffID names its directory: short paths keep an
// overlay's lowerdir option, bounded by a page, short.
const idLen = 24

func (s *Store) name(diffID v1.Hash) string  { return diffID.Hex[:idLen] }
func (s *Store) path(name string) string     { return filepath.Join(s.dir, name) }
func (s *Store) lockPath(name string) string { return filepath.Join(s.dir, name+".lock") }
func (s *Store) usePath(name string) string  { return filepath.Join(s.dir, name+".use") }

// Held is a layer extracted in the store, held until Release.
type Held struct {
	// Dir is the layer's tree.
	Dir string
	// Extracted reports whether this Get extracted it (rather than found
	// it there).
	Extracted bool
	lock      *os.File
}

// Release lets go of the layer: the store may trim it.
func (h *Held) Release() error {
	if h.lock == nil {
		return nil
	}
	err := h.lock.Close()
	h.lock = nil
	return err
}

// Get returns l extracted, extracting it first (with extract, checking its
// diffID) unless a build did before. The layer stays held until Release.
func (s *Store) Get(ctx context.Context, l v1.Layer, extract Extract) (*Held, error) {
	diffID, err := l.DiffID()
	if err != nil {
		return nil, err
	}
	if diffID.Algorithm != "sha256" || len(diffID.Hex) != 64 {
		return nil, fmt.Errorf("layer diffID %s: only sha256 is kept", diffID)
	}
	name := s.name(diffID)
	// Two locks: .lock, held exclusively while a layer is checked and
	// extracted (and trimmed); .use, held shared while a build uses it.
	lock, err := os.OpenFile(s.lockPath(name), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	if err := flock(ctx, lock, unix.LOCK_EX); err != nil {
		return nil, err
	}
	use, err := os.OpenFile(s.usePath(name), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(use.Fd()), unix.LOCK_SH); err != nil {
		use.Close()
		return nil, err
	}
	h := &Held{Dir: filepath.Join(s.path(name), "fs"), lock: use}
	if !s.complete(name, diffID) {
		if err := s.extract(ctx, name, diffID, l, extract); err != nil {
			use.Close()
			return nil, err
		}
		h.Extracted = true
	}
	now := s.now()
	os.Chtimes(s.path(name), now, now) // least recently used goes first
	return h, nil
}

// flock takes a lock on f, waiting until ctx is done.
func flock(ctx context.Context, f *os.File, how int) error {
	for delay := 5 * time.Millisecond; ; delay = min(2*delay, 200*time.Millisecond) {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

// complete reports whether the layer's directory is there, whole: its
// marker names the full diffID.
func (s *Store) complete(name string, diffID v1.Hash) bool {
	data, err := os.ReadFile(filepath.Join(s.path(name), "diffid"))
	return err == nil && strings.TrimSpace(string(data)) == diffID.String()
}

// extract extracts l into the store under name, replacing what a build
// that died may have left there.
func (s *Store) extract(ctx context.Context, name string, diffID v1.Hash, l v1.Layer, extract Extract) error {
	final := s.path(name)
	os.RemoveAll(final)
	tmp, err := os.MkdirTemp(s.dir, ".extract-"+name+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	tree := filepath.Join(tmp, "fs")
	if err := os.Mkdir(tree, 0o755); err != nil {
		return err
	}
	// Decompressed ahead of extraction, on a core of its own.
	rc, err := layer.Uncompressed(l)
	if err != nil {
		return fmt.Errorf("layer %s: %w", diffID, err)
	}
	defer rc.Close()
	h := sha256.New()
	count := &counter{r: io.TeeReader(rc, h)}
	if err := extract(ctx, tree, count); err != nil {
		return err
	}
	// The tar may end before its stream does (padding): the rest counts.
	if _, err := io.Copy(io.Discard, count); err != nil {
		return fmt.Errorf("layer %s: %w", diffID, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != diffID.Hex {
		return fmt.Errorf("layer %s: the content's digest is sha256:%s", diffID, got)
	}
	if err := os.WriteFile(filepath.Join(tmp, "size"), []byte(strconv.FormatInt(count.n, 10)), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "diffid"), []byte(diffID.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, final)
}

type counter struct {
	r io.Reader
	n int64
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Trim removes layers, least recently used first, until the store holds at
// most its limit; a layer a build holds stays. It also removes what
// extractions that died left.
func (s *Store) Trim() {
	s.trimMu.Lock()
	defer s.trimMu.Unlock()
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return
	}
	type layer struct {
		name string
		size int64
		used time.Time
	}
	var layers []layer
	var total int64
	for _, e := range entries {
		n := e.Name()
		switch {
		case strings.HasPrefix(n, ".trash-"):
			os.RemoveAll(filepath.Join(s.dir, n))
		case strings.HasPrefix(n, ".extract-"):
			// Its extraction holds the layer's lock; one that died does not.
			id := strings.SplitN(strings.TrimPrefix(n, ".extract-"), "-", 2)[0]
			if s.tryRemove(id, filepath.Join(s.dir, n)) {
				s.log.Debugf("layer store: removed %s, left by an extraction that died", n)
			}
		case e.IsDir() && len(n) == idLen:
			info, err := e.Info()
			if err != nil {
				continue
			}
			data, _ := os.ReadFile(filepath.Join(s.dir, n, "size"))
			size, _ := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
			layers = append(layers, layer{name: n, size: size, used: info.ModTime()})
			total += size
		}
	}
	if s.limit <= 0 || total <= s.limit {
		return
	}
	sort.Slice(layers, func(i, j int) bool { return layers[i].used.Before(layers[j].used) })
	for _, l := range layers {
		if total <= s.limit {
			break
		}
		if s.tryRemove(l.name, s.path(l.name)) {
			total -= l.size
			s.log.Debugf("layer store: removed layer %s (%d bytes), least recently used", l.name, l.size)
		}
	}
}

// tryRemove removes path if nobody extracts or uses layer name.
func (s *Store) tryRemove(name, path string) bool {
	for _, p := range []string{s.lockPath(name), s.usePath(name)} {
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return false
		}
		defer f.Close()
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
			return false
		}
	}
	// Renamed first: a build never sees half a layer.
	trash := filepath.Join(s.dir, ".trash-"+name+"-"+strconv.FormatInt(s.now().UnixNano(), 36))
	if err := os.Rename(path, trash); err != nil {
		return false
	}
	os.RemoveAll(trash)
	return true
}
