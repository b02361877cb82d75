package registry

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"golang.org/x/sys/unix"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/kiln-build/kiln/internal/testregistry"
)

func TestPullByTagAndDigest(t *testing.T) {
	reg := testregistry.Start(t)
	img := randomImage(t, 4096, 2)
	seed(t, reg, "team/app:v1", img)
	seed(t, reg, "team/app:latest", img)
	want := mustDigest(t, img)
	c, _ := newClient(t, WithInsecureRegistries(reg.Host))

	for _, ref := range []string{
		reg.Ref("team/app:v1"),
		reg.Ref("team/app"), // :latest
		reg.Ref("team/app@" + want.String()),
	} {
		got, err := c.Pull(t.Context(), ref, v1.Platform{})
		if err != nil {
			t.Fatalf("Pull(%q): %v", ref, err)
		}
		if d := mustDigest(t, got); d != want {
			t.Fatalf("Pull(%q) = %s, want %s", ref, d, want)
		}
		readLayers(t, got)
	}
}

func TestPullErrorNamesReference(t *testing.T) {
	reg := testregistry.Start(t)
	seed(t, reg, "library/busybox:latest", randomImage(t, 4096, 1))
	c, _ := newClient(t, WithInsecureRegistries(reg.Host))

	_, err := c.Pull(t.Context(), reg.Ref("library/busybox:lates"), v1.Platform{})
	assertErrorContains(t, err, `pulling "`+reg.Ref("library/busybox:lates")+`": `, "MANIFEST_UNKNOWN")

	_, err = c.Pull(t.Context(), "UPPER/case:x", v1.Platform{})
	assertErrorContains(t, err, `pulling "UPPER/case:x": `)
}

func TestPullPlatformFromIndex(t *testing.T) {
	platforms := []v1.Platform{
		{OS: "linux", Architecture: "amd64"},
		{OS: "linux", Architecture: "arm", Variant: "v6"},
		{OS: "linux", Architecture: "arm", Variant: "v7"},
	}
	for _, tc := range []struct {
		name                 string
		index, manifest, cfg types.MediaType
	}{
		{"docker manifest list", types.DockerManifestList, types.DockerManifestSchema2, types.DockerConfigJSON},
		{"OCI index", types.OCIImageIndex, types.OCIManifestSchema1, types.OCIConfigJSON},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := testregistry.Start(t)
			idx := mutate.IndexMediaType(empty.Index, tc.index)
			images := map[string]v1.Image{}
			for _, p := range platforms {
				img := withPlatform(t, randomImage(t, 4096, 1), p)
				img = mutate.ConfigMediaType(mutate.MediaType(img, tc.manifest), tc.cfg)
				images[p.String()] = img
				idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
			}
			ref, err := name.ParseReference(reg.Ref("multi/app:v1"))
			if err != nil {
				t.Fatal(err)
			}
			if err := remote.WriteIndex(ref, idx, reg.RemoteOptions()...); err != nil {
				t.Fatal(err)
			}
			c, hook := newClient(t, WithInsecureRegistries(reg.Host))

			for _, p := range platforms {
				got, err := c.Pull(t.Context(), reg.Ref("multi/app:v1"), p)
				if err != nil {
					t.Fatalf("Pull for %s: %v", p, err)
				}
				if d, want := mustDigest(t, got), mustDigest(t, images[p.String()]); d != want {
					t.Fatalf("Pull for %s = %s, want %s", p, d, want)
				}
			}
			_, err = c.Pull(t.Context(), reg.Ref("multi/app:v1"), v1.Platform{OS: "linux", Architecture: "s390x"})
			assertErrorContains(t, err, `pulling "`+reg.Ref("multi/app:v1")+`"`, "linux/s390x")
			if logged(hook, logrus.WarnLevel, "") {
				t.Fatalf("warnings for index pulls: %v", hook.AllEntries())
			}
		})
	}
}

func TestPullOtherPlatformWarns(t *testing.T) {
	reg := testregistry.Start(t)
	img := withPlatform(t, randomImage(t, 4096, 1), v1.Platform{OS: "linux", Architecture: "arm64"})
	seed(t, reg, "arm/app:v1", img)
	c, hook := newClient(t, WithInsecureRegistries(reg.Host))

	got, err := c.Pull(t.Context(), reg.Ref("arm/app:v1"), v1.Platform{OS: "linux", Architecture: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	if mustDigest(t, got) != mustDigest(t, img) {
		t.Fatal("pulled another image")
	}
	if !logged(hook, logrus.WarnLevel, "is for linux/arm64, not linux/amd64") {
		t.Fatalf("no platform warning in %v", hook.AllEntries())
	}
}

func TestPullCachesLayers(t *testing.T) {
	reg := testregistry.Start(t)
	img := paddedLayerImage(t)
	seed(t, reg, "team/app:v1", img)
	cacheDir := t.TempDir()
	c, _ := newClient(t, WithInsecureRegistries(reg.Host), WithCacheDir(cacheDir))

	got, err := c.Pull(t.Context(), reg.Ref("team/app:v1"), v1.Platform{})
	if err != nil {
		t.Fatal(err)
	}
	layers, err := got.Layers()
	if err != nil {
		t.Fatal(err)
	}
	digest, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	blobGets := func() int { return countRequests(reg, http.MethodGet, "/blobs/"+digest.String()) }

	// Read as an extractor does: tar entries up to the end-of-archive
	// marker, then Close without draining the stream.
	first := tarContent(t, layers[0])
	if n := blobGets(); n != 1 {
		t.Fatalf("%d blob GETs after the first read, want 1", n)
	}
	c.Wait() // the entry is committed in the background
	if _, err := os.Stat(filepath.Join(cacheDir, "blobs", digest.Algorithm, digest.Hex)); err != nil {
		t.Fatalf("no cache entry: %v", err)
	}
	if second := tarContent(t, layers[0]); !bytes.Equal(first, second) {
		t.Fatal("second read differs from the first")
	}
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()

	// A later build with the same cache directory.
	c2, _ := newClient(t, WithInsecureRegistries(reg.Host), WithCacheDir(cacheDir))
	again, err := c2.Pull(t.Context(), reg.Ref("team/app:v1"), v1.Platform{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := again.LayerByDigest(digest)
	if err != nil {
		t.Fatal(err)
	}
	if third := tarContent(t, l); !bytes.Equal(first, third) {
		t.Fatal("read from a new client differs")
	}
	if n := blobGets(); n != 1 {
		t.Fatalf("%d blob GETs after cached reads, want 1", n)
	}
}

func TestPullCacheKeepsNoPartialEntry(t *testing.T) {
	reg := testregistry.Start(t)
	// Random content does not compress: the layer is well over the drain
	// limit of Close.
	big := randomImage(t, 4<<20, 1)
	seed(t, reg, "team/big:v1", big)
	cacheDir := t.TempDir()
	c, _ := newClient(t, WithInsecureRegistries(reg.Host), WithCacheDir(cacheDir))
	got, err := c.Pull(t.Context(), reg.Ref("team/big:v1"), v1.Platform{})
	if err != nil {
		t.Fatal(err)
	}
	layers, err := got.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(io.Discard, rc, 1024); err != nil {
		t.Fatal(err)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	var files []string
	filepath.WalkDir(cacheDir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, path)
		}
		return err
	})
	if len(files) != 0 {
		t.Fatalf("cache holds %v after an abandoned read", files)
	}
}

func TestCacheFillRejectsWrongContent(t *testing.T) {
	dir := t.TempDir()
	want := v1.Hash{Algorithm: "sha256", Hex: "0000000000000000000000000000000000000000000000000000000000000000"}
	path := filepath.Join(dir, "entry")
	log, _ := test.NewNullLogger()
	fill, err := newCacheFill(io.NopCloser(bytes.NewReader([]byte("not the layer"))), want, path, log, &sync.WaitGroup{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(io.Discard, fill)
	assertErrorContains(t, err, "downloaded content has digest sha256:")
	fill.Close()
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("cache dir holds %v", entries)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("entry written for wrong content: %v", err)
	}
}

// withPlatform sets the platform in img's config.
func withPlatform(t *testing.T, img v1.Image, p v1.Platform) v1.Image {
	t.Helper()
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Variant = p.OS, p.Architecture, p.Variant
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// paddedLayerImage has one layer with 64 KiB of zeros past the tar's
// end-of-archive marker (GNU tar pads to a record), stored without
// compression: a tar reader stops well before the end of the blob, further
// than the decompressor reads ahead.
func paddedLayerImage(t *testing.T) v1.Image {
	t.Helper()
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	content := bytes.Repeat([]byte("kiln"), 4096)
	if err := tw.WriteHeader(&tar.Header{Name: "data", Mode: 0o644, Size: int64(len(content))}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(content); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	raw.Write(make([]byte, 64<<10))

	var blob bytes.Buffer
	zw, err := gzip.NewWriterLevel(&blob, gzip.NoCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(raw.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(blob.Bytes())), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// readLayers reads every layer to the end; remote layers verify their
// digest at EOF.
func readLayers(t *testing.T, img v1.Image) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
}

// tarContent reads l's tar stream until the end-of-archive marker and
// returns the file contents.
func tarContent(t *testing.T, l v1.Layer) []byte {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out bytes.Buffer
	tr := tar.NewReader(rc)
	for {
		_, err := tr.Next()
		if err == io.EOF {
			return out.Bytes()
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(&out, tr); err != nil {
			t.Fatal(err)
		}
	}
}

// A partial entry left by a download that died is removed; one being
// written (locked) is not.
func TestPullCacheRemovesDeadPartials(t *testing.T) {
	reg := testregistry.Start(t)
	seed(t, reg, "team/app:v1", paddedLayerImage(t))
	cacheDir := t.TempDir()
	c, _ := newClient(t, WithInsecureRegistries(reg.Host), WithCacheDir(cacheDir))
	img, err := c.Pull(t.Context(), reg.Ref("team/app:v1"), v1.Platform{})
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	dir := filepath.Join(cacheDir, "blobs", d.Algorithm)
	os.MkdirAll(dir, 0o755)
	dead := filepath.Join(dir, "feed"+partialInfix+"1")
	live := filepath.Join(dir, "beef"+partialInfix+"2")
	os.WriteFile(dead, []byte("x"), 0o644)
	f, err := os.Create(live)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	tarContent(t, layers[0])
	c.Wait()
	if _, err := os.Stat(dead); !errors.Is(err, os.ErrNotExist) {
		t.Error("a dead partial entry is still there")
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("a partial entry being written was removed: %v", err)
	}
}
