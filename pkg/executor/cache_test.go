package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/testimage"
	"github.com/kiln-build/kiln/pkg/cache"
	"github.com/kiln-build/kiln/pkg/fsview"
)

const cachedDockerfile = `FROM base
ARG V=1
COPY app/ /app/
RUN write /built $V; copy /app/a.txt /from-app
WORKDIR /srv
RUN --mount=type=secret,id=tok copy /run/secrets/tok /secret-copy; rm /secret-copy; write /second 2
LABEL l=$V
`

// cacheRun is a build of cachedDockerfile with the layer cache.
type cacheRun struct {
	img    v1.Image
	cached map[int]bool // step number → served from the cache
	logs   *testBuild
}

func buildCached(t *testing.T, store cache.Store, ctxFiles fsview.MapFS, args map[string]string, extra ...Option) cacheRun {
	t.Helper()
	plan, err := planDockerfile(cachedDockerfile, "", args)
	if err != nil {
		t.Fatal(err)
	}
	tb := newTestBuild(t, "FROM base\n", "", nil)
	tb.plan = plan
	tb.with(WithBuildContext(memContext{fs: ctxFiles}), WithReproducible(time.Unix(0, 0)),
		WithSecrets(map[string][]byte{"tok": []byte("s3cr3t-value")}),
		WithCache(CacheOptions{Store: store, RunLayers: true, CopyLayers: true, Write: true}))
	tb.with(extra...)
	img := tb.run()
	r := cacheRun{img: img, cached: map[int]bool{}, logs: tb}
	for _, e := range tb.logs.AllEntries() {
		if c, ok := e.Data["cached"].(bool); ok {
			r.cached[e.Data["step"].(int)] = c
		}
	}
	return r
}

// pattern says, for COPY, RUN, WORKDIR and RUN (steps 2 to 5), whether
// each was served from the cache (H) or ran (M).
func (r cacheRun) pattern() string {
	var b strings.Builder
	for step := 2; step <= 5; step++ {
		hit, seen := r.cached[step]
		switch {
		case !seen:
			b.WriteString("?")
		case hit:
			b.WriteString("H")
		default:
			b.WriteString("M")
		}
	}
	return b.String()
}

func files() fsview.MapFS {
	return fsview.MapFS{
		"app/a.txt": {Entry: fsview.Entry{Mode: 0o644, ModTime: time.Unix(1000, 0)}, Data: []byte("A")},
		"app/b.txt": {Entry: fsview.Entry{Mode: 0o644, ModTime: time.Unix(1000, 0)}, Data: []byte("B")},
	}
}

func digestOf(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestLayerCache(t *testing.T) {
	store, err := cache.OpenLayout(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cold := buildCached(t, store, files(), nil)
	if got := cold.pattern(); got != "MMMM" {
		t.Fatalf("cold build: %s (%v)", got, cold.cached)
	}
	warm := buildCached(t, store, files(), nil)
	if got := warm.pattern(); got != "HHHH" {
		t.Fatalf("unchanged rebuild: %s (%v)", got, warm.cached)
	}
	// Nothing was extracted, and the image is the same, to the digest.
	if lines := warm.logs.messages("npacked"); len(lines) != 0 {
		t.Errorf("a rebuild served from the cache unpacked: %q", lines)
	}
	if len(warm.logs.sandbox.specs()) != 0 {
		t.Errorf("a rebuild served from the cache ran %d commands", len(warm.logs.sandbox.specs()))
	}
	if digestOf(t, warm.img) != digestOf(t, cold.img) {
		t.Error("the cached rebuild's digest differs from the cold build's")
	}

	for _, tc := range []struct {
		name    string
		change  func(fsview.MapFS)
		args    map[string]string
		pattern string
	}{
		{"mtime only", func(m fsview.MapFS) { m["app/a.txt"].ModTime = time.Unix(2000, 0) }, nil, "HHHH"},
		{"one byte", func(m fsview.MapFS) { m["app/b.txt"].Data = []byte("C") }, nil, "MMMM"},
		{"rename", func(m fsview.MapFS) { m["app/c.txt"] = m["app/b.txt"]; delete(m, "app/b.txt") }, nil, "MMMM"},
		{"chmod", func(m fsview.MapFS) { m["app/b.txt"].Mode = 0o600 }, nil, "MMMM"},
		// V is seen by the RUNs, not by COPY; the second RUN follows the first.
		{"build arg", func(fsview.MapFS) {}, map[string]string{"V": "2"}, "HMMM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := files()
			tc.change(f)
			if got := buildCached(t, store, f, tc.args).pattern(); got != tc.pattern {
				t.Errorf("got %s, want %s", got, tc.pattern)
			}
		})
	}

	t.Run("base image", func(t *testing.T) {
		other := testimage.Image(t, testimage.DefaultEnv, nil, testimage.Layer(t,
			testimage.File{Path: "etc", Dir: true, UID: os.Getuid(), GID: os.Getgid()},
			testimage.File{Path: "etc/passwd", Data: "root:x:0:0::/root:/bin/sh\n", UID: os.Getuid(), GID: os.Getgid()}))
		src := buildCached(t, store, files(), nil, WithImageSource(newFakeSource(map[string]v1.Image{"base": other})))
		if got := src.pattern(); got != "MMMM" {
			t.Errorf("another base image: %s", got)
		}
	})

	t.Run("secrets stay out of the cache", func(t *testing.T) {
		dir := strings.TrimPrefix(store.String(), "oci:")
		filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
			if err != nil || info.IsDir() {
				return err
			}
			data, _ := os.ReadFile(p)
			if bytes.Contains(data, []byte("s3cr3t-value")) {
				t.Errorf("the secret is in %s", p)
			}
			return nil
		})
	})
}

func TestLayerCacheMissDoesNotStopLookups(t *testing.T) {
	dir := t.TempDir()
	store, err := cache.OpenLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	buildCached(t, store, files(), nil)
	// Lose the first RUN's entry: it runs again; the steps after it are
	// still served (their keys come from inputs, not from that result).
	lost := dropEntries(t, dir, 1, func(e *cache.Entry) bool { return e.Layer != nil && hasFile(t, e.Layer, "built") })
	if lost != 1 {
		t.Fatalf("dropped %d entries", lost)
	}
	if got := buildCached(t, store, files(), nil).pattern(); got != "HMHH" {
		t.Errorf("got %s, want HMHH", got)
	}
}

// dropEntries removes from the layout store in dir up to n entries for
// which match is true, and says how many it removed.
func dropEntries(t *testing.T, dir string, n int, match func(*cache.Entry) bool) int {
	t.Helper()
	idxPath := filepath.Join(dir, "index.json")
	raw, err := os.ReadFile(idxPath)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	store, _ := cache.OpenLayout(dir)
	kept := idx.Manifests[:0]
	dropped := 0
	for _, m := range idx.Manifests {
		key := m.Annotations["org.opencontainers.image.ref.name"]
		e, err := store.Get(context.Background(), key)
		if err == nil && dropped < n && match(e) {
			dropped++
			continue
		}
		kept = append(kept, m)
	}
	idx.Manifests = kept
	out, _ := json.Marshal(idx)
	if err := os.WriteFile(idxPath, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return dropped
}

func hasFile(t *testing.T, l v1.Layer, name string) bool {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data := new(bytes.Buffer)
	data.ReadFrom(rc)
	return bytes.Contains(data.Bytes(), []byte(name))
}

// failingStore is a cache whose every request fails, as an unreachable
// registry does.
type failingStore struct {
	mu    sync.Mutex
	calls int
}

func (f *failingStore) Get(context.Context, string) (*cache.Entry, error) {
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	return nil, errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
}

func (f *failingStore) Put(context.Context, string, *cache.Entry) error {
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	return errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
}

func (f *failingStore) String() string { return "cache.example.com/team/cache" }

func TestLayerCacheTroubleIsOneWarning(t *testing.T) {
	store := &failingStore{}
	r := buildCached(t, store, files(), nil)
	if got := r.pattern(); got != "MMMM" {
		t.Errorf("got %s", got)
	}
	var warnings []string
	for _, e := range r.logs.logs.AllEntries() {
		// Without root, extraction also warns that it keeps its own uid as
		// owner; only the cache's warnings count here.
		if e.Level.String() == "warning" && !strings.HasPrefix(e.Message, "cannot set owner") {
			warnings = append(warnings, e.Message)
		}
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "cache.example.com/team/cache") || !strings.Contains(warnings[0], "connection refused") {
		t.Errorf("warnings: %q", warnings)
	}
	if store.calls != 1 {
		t.Errorf("the failing store was asked %d times after it failed", store.calls)
	}
}

func TestLayerCacheNoWrite(t *testing.T) {
	dir := t.TempDir()
	store, err := cache.OpenLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	buildCached(t, store, files(), nil, WithCache(CacheOptions{Store: store, RunLayers: true, CopyLayers: true, Write: false}))
	if got := buildCached(t, store, files(), nil).pattern(); got != "MMMM" {
		t.Errorf("after a build that did not write the cache: %s", got)
	}
}

func TestLayerCacheTTL(t *testing.T) {
	store, err := cache.OpenLayout(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	buildCached(t, store, files(), nil)
	r := buildCached(t, store, files(), nil, WithCache(CacheOptions{Store: store, TTL: time.Nanosecond, RunLayers: true, CopyLayers: true}))
	if got := r.pattern(); got != "MMMM" {
		t.Errorf("expired entries were served: %s", got)
	}
}

// countedImage counts the reads of its layers' content.
type countedImage struct {
	v1.Image
	reads *atomic.Int32
}

func (c countedImage) Layers() ([]v1.Layer, error) {
	ls, err := c.Image.Layers()
	for i, l := range ls {
		ls[i] = countedLayer{l, c.reads}
	}
	return ls, err
}

type countedLayer struct {
	v1.Layer
	reads *atomic.Int32
}

func (c countedLayer) Compressed() (io.ReadCloser, error) {
	c.reads.Add(1)
	return c.Layer.Compressed()
}

func (c countedLayer) Uncompressed() (io.ReadCloser, error) {
	c.reads.Add(1)
	return c.Layer.Uncompressed()
}

// With COPY not cached (kaniko's default), a rebuild still runs the COPY,
// which needs the base's tree: the headers kept in the cache give it, so
// the base is neither downloaded nor extracted when the RUN after it hits.
func TestLayerCacheKeepsBaseHeaders(t *testing.T) {
	defer func(old int64) { minKeptHeaders = old }(minKeptHeaders)
	minKeptHeaders = 0
	store, err := cache.OpenLayout(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const df = "FROM base\nCOPY app/ /app/\nRUN write /built 1\n"
	build := func() (v1.Image, *testBuild, int32) {
		var reads atomic.Int32
		tb := newTestBuild(t, df, "", nil)
		tb.source.images["base"] = countedImage{baseImage(t), &reads}
		tb.with(WithBuildContext(memContext{fs: files()}), WithReproducible(time.Unix(0, 0)),
			WithCache(CacheOptions{Store: store, RunLayers: true, Write: true}))
		return tb.run(), tb, reads.Load()
	}
	cold, _, coldReads := build()
	// One pass over the base: the unpacking that the RUN needs also records
	// the headers, and the COPY reads the tree on disk.
	if coldReads != 1 {
		t.Errorf("the cold build read its one base layer %d times", coldReads)
	}
	warm, tb, warmReads := build()
	if warmReads != 0 {
		t.Errorf("the rebuild read base layers %d times", warmReads)
	}
	if len(tb.messages("come from the cache")) == 0 {
		t.Errorf("no headers came from the cache: %q", tb.messages("headers"))
	}
	if len(tb.sandbox.specs()) != 0 || len(tb.messages("npacked")) != 0 {
		t.Error("the rebuild ran or unpacked something")
	}
	if digestOf(t, warm) != digestOf(t, cold) {
		t.Error("the rebuild's digest differs from the cold build's")
	}
	flat := flatten(t, warm)
	if flat["/app/a.txt"].data != "A" || flat["/built"].data != "1" || flat["/data/keep"].data != "base" {
		t.Errorf("the rebuilt image: %v", flat)
	}
}
