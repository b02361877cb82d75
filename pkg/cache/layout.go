package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/pkg/workdir"
)

// LayoutStore keeps entries in an OCI image layout directory (--cache-repo
// oci:/path), which builds sharing a volume use at the same time.
type LayoutStore struct {
	layoutDir
}

// layoutDir is an OCI image layout directory that several processes read
// and write at once: blobs are written to a temporary name, checked and
// renamed, index.json is replaced whole under a lock, and readers never
// lock.
type layoutDir struct {
	dir string
}

// refAnnotation names an entry in index.json, as OCI layouts name images.
const refAnnotation = "org.opencontainers.image.ref.name"

// OpenLayout opens (creating if needed) the layout store in dir.
func OpenLayout(dir string) (*LayoutStore, error) {
	l, err := openLayoutDir(dir)
	if err != nil {
		return nil, fmt.Errorf("cache %q: %w", dir, err)
	}
	return &LayoutStore{layoutDir: l}, nil
}

func openLayoutDir(dir string) (layoutDir, error) {
	s := layoutDir{dir: dir}
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return s, err
	}
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err == nil {
		return s, nil
	}
	err := s.locked(context.Background(), func() error {
		if err := writeFileAtomic(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
			return err
		}
		if _, err := os.Stat(filepath.Join(dir, "index.json")); err == nil {
			return nil
		}
		return s.writeIndex(&v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex})
	})
	return s, err
}

func (s *LayoutStore) String() string { return "oci:" + s.dir }

// Get finds key in index.json and checks the entry's blobs: present, of
// their size, and of their digest (a blob whose file is unchanged since it
// was last checked is not hashed again).
func (s *LayoutStore) Get(ctx context.Context, key string) (*Entry, error) {
	idx, err := s.readIndex()
	if err != nil {
		return nil, miss("%s: index.json: %v", s, err)
	}
	var desc *v1.Descriptor
	for i := range idx.Manifests {
		if idx.Manifests[i].Annotations[refAnnotation] == key {
			desc = &idx.Manifests[i]
		}
	}
	if desc == nil {
		return nil, miss("%s has no entry", s)
	}
	img, err := s.image(ctx, *desc)
	if err != nil {
		return nil, corrupt("%s: %v", s, err)
	}
	return EntryFromImage(key, img)
}

// image returns the image desc names, its blobs checked.
func (s layoutDir) image(ctx context.Context, desc v1.Descriptor) (v1.Image, error) {
	if err := s.verify(desc.Digest, desc.Size); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	img, err := layout.Path(s.dir).Image(desc.Digest)
	if err != nil {
		return nil, err
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	for _, b := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := s.verify(b.Digest, b.Size); err != nil {
			return nil, err
		}
	}
	return img, nil
}

// Put writes the entry's blobs, then points key at its manifest.
func (s *LayoutStore) Put(ctx context.Context, key string, e *Entry) error {
	img, err := EntryImage(key, e)
	if err != nil {
		return err
	}
	desc, err := s.writeImage(ctx, img)
	if err != nil {
		return err
	}
	desc.Annotations = map[string]string{refAnnotation: key}
	return s.replace(ctx, desc, func(d v1.Descriptor) bool { return d.Annotations[refAnnotation] == key })
}

// writeImage writes the blobs of img and returns its descriptor.
func (s layoutDir) writeImage(ctx context.Context, img v1.Image) (v1.Descriptor, error) {
	layers, err := img.Layers()
	if err != nil {
		return v1.Descriptor{}, err
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return v1.Descriptor{}, err
		}
		rc, err := l.Compressed()
		if err != nil {
			return v1.Descriptor{}, err
		}
		err = s.writeBlob(ctx, d, rc)
		rc.Close()
		if err != nil {
			return v1.Descriptor{}, err
		}
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return v1.Descriptor{}, err
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		return v1.Descriptor{}, err
	}
	if err := s.writeBlob(ctx, cfgName, bytes.NewReader(raw)); err != nil {
		return v1.Descriptor{}, err
	}
	rawManifest, err := img.RawManifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	digest, err := img.Digest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	if err := s.writeBlob(ctx, digest, bytes.NewReader(rawManifest)); err != nil {
		return v1.Descriptor{}, err
	}
	mt, err := img.MediaType()
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: mt, Digest: digest, Size: int64(len(rawManifest))}, nil
}

// replace puts desc in index.json in place of the descriptors old matches.
func (s layoutDir) replace(ctx context.Context, desc v1.Descriptor, old func(v1.Descriptor) bool) error {
	return s.locked(ctx, func() error {
		idx, err := s.readIndex()
		if err != nil {
			return err
		}
		kept := idx.Manifests[:0]
		for _, m := range idx.Manifests {
			if !old(m) {
				kept = append(kept, m)
			}
		}
		idx.Manifests = append(kept, desc)
		return s.writeIndex(idx)
	})
}

func (s layoutDir) blobPath(h v1.Hash) string {
	return filepath.Join(s.dir, "blobs", h.Algorithm, h.Hex)
}

// writeBlob stores a blob under a temporary name, checks its digest and
// renames it into place; a blob already there is left alone.
func (s layoutDir) writeBlob(ctx context.Context, h v1.Hash, rc io.Reader) error {
	if h.Algorithm != "sha256" {
		return fmt.Errorf("blob %s: only sha256 digests are kept", h)
	}
	final := s.blobPath(h)
	if _, err := os.Stat(final); err == nil {
		return nil
	}
	f, err := os.CreateTemp(filepath.Dir(final), ".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	d := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, d), readerWithContext{ctx, rc})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing blob %s: %w", h, err)
	}
	if got := hex.EncodeToString(d.Sum(nil)); got != h.Hex {
		return fmt.Errorf("writing blob %s: the content's digest is sha256:%s", h, got)
	}
	if err := os.Rename(f.Name(), final); err != nil {
		return err
	}
	return s.markVerified(final)
}

// verify checks that blob h is there with size bytes and digest h. A
// marker beside the blob records the file it checked (inode, size, mtime),
// so an unchanged file is not hashed again.
func (s layoutDir) verify(h v1.Hash, size int64) error {
	p := s.blobPath(h)
	st, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("blob %s: %w", h, err)
	}
	if st.Size() != size {
		return fmt.Errorf("blob %s has %d bytes, not %d", h, st.Size(), size)
	}
	if marker, err := os.ReadFile(verifiedMarker(p)); err == nil && string(marker) == fileStamp(st) {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	d := sha256.New()
	if _, err := io.Copy(d, f); err != nil {
		return fmt.Errorf("blob %s: %w", h, err)
	}
	if got := hex.EncodeToString(d.Sum(nil)); got != h.Hex {
		return fmt.Errorf("blob %s is corrupt (its content's digest is sha256:%s)", h, got)
	}
	return s.markVerified(p)
}

func (s layoutDir) markVerified(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	return writeFileAtomic(verifiedMarker(p), []byte(fileStamp(st)))
}

func verifiedMarker(blob string) string {
	return filepath.Join(filepath.Dir(blob), ".verified-"+filepath.Base(blob))
}

func fileStamp(st os.FileInfo) string {
	ino := uint64(0)
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		ino = sys.Ino
	}
	return strconv.FormatUint(ino, 10) + " " + strconv.FormatInt(st.Size(), 10) + " " + strconv.FormatInt(st.ModTime().UnixNano(), 10)
}

func (s layoutDir) readIndex() (*v1.IndexManifest, error) {
	f, err := os.Open(filepath.Join(s.dir, "index.json"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return v1.ParseIndexManifest(io.LimitReader(f, 64<<20))
}

func (s layoutDir) writeIndex(idx *v1.IndexManifest) error {
	raw, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(s.dir, "index.json"), raw)
}

// locked runs f holding the store's lock, which orders writers of
// index.json across processes.
func (s layoutDir) locked(ctx context.Context, f func() error) error {
	unlock, err := workdir.Lock(ctx, filepath.Join(s.dir, ".kiln-lock"), nil)
	if err != nil {
		return err
	}
	defer unlock()
	return f()
}

// writeFileAtomic replaces p with data: readers see the old file or the
// new one, never a part.
func writeFileAtomic(p string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), p)
}

// readerWithContext stops reading when ctx is done.
type readerWithContext struct {
	ctx context.Context
	r   io.Reader
}

func (r readerWithContext) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
