package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kiln-build/kiln/internal/testimage"
	"github.com/kiln-build/kiln/internal/testregistry"
	"github.com/kiln-build/kiln/internal/testutil"
)

// cacheDockerfile has, after ARG, a COPY (step 2) and two RUNs (3, 4): the
// second RUN reads a secret, which must reach no cache entry.
const cacheDockerfile = `FROM %s
ARG V=1
COPY app/ /app/
RUN echo "$V" > /built && cat /app/a.txt > /from-app
RUN --mount=type=secret,id=tok wc -c < /run/secrets/tok > /secret-length
`

const cacheSecret = "s3cr3t-cache-value"

// logLine is one JSON log record of a build.
type logLine struct {
	Msg    string `json:"msg"`
	Level  string `json:"level"`
	Step   int    `json:"step"`
	Cached *bool  `json:"cached"`
}

// cacheBuild is one build's outcome: H or M per cacheable step, warnings.
type cacheBuild struct {
	pattern  string
	warnings []string
	out      string
}

// buildWithCache builds dir with the cache flags and reads the steps'
// cache outcome from the JSON log.
func (e *env) buildWithCache(dir string, dest string, args ...string) cacheBuild {
	e.t.Helper()
	secretFile := filepath.Join(e.t.TempDir(), "tok")
	if err := os.WriteFile(secretFile, []byte(cacheSecret), 0o600); err != nil {
		e.t.Fatal(err)
	}
	all := append([]string{"-d", dest, "--log-format", "json", "-v", "debug", "--reproducible", "--cache=true",
		"--cache-copy-layers", "--secret", "id=tok,src=" + secretFile}, args...)
	out := e.build(dir, all...)
	steps := map[int]bool{}
	var b cacheBuild
	b.out = out
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		if l.Cached != nil {
			steps[l.Step] = *l.Cached
		}
		if l.Level == "warning" {
			b.warnings = append(b.warnings, l.Msg)
		}
	}
	for step := 2; step <= 4; step++ {
		hit, seen := steps[step]
		switch {
		case !seen:
			b.pattern += "?"
		case hit:
			b.pattern += "H"
		default:
			b.pattern += "M"
		}
	}
	return b
}

func cacheContext(t *testing.T, base string, files map[string]string) string {
	all := map[string]string{"Dockerfile": fmt.Sprintf(cacheDockerfile, base), "app/a.txt": "A", "app/b.txt": "B"}
	for k, v := range files {
		all[k] = v
	}
	return writeFiles(t, all)
}

// layerGets counts the downloads of the layers of images the registry
// served since mark (configs do not count).
func (e *env) layerGets(mark int, images ...string) int {
	layers := map[string]bool{}
	for _, ref := range images {
		for _, l := range mustLayers(e.t, e.pull(ref)) {
			d, err := l.Digest()
			if err != nil {
				e.t.Fatal(err)
			}
			layers[d.String()] = true
		}
	}
	n := 0
	for _, r := range e.reg.Requests()[mark:] {
		if _, digest, ok := strings.Cut(r.Path, "/blobs/"); ok && r.Method == http.MethodGet && layers[digest] {
			n++
		}
	}
	return n
}

func TestLayerCacheInRegistry(t *testing.T) {
	testutil.RequireRoot(t, "RUN with chroot isolation")
	e := newEnv(t)
	base := pushBusybox(e)
	dest := e.ref("team/app:1")
	cacheRepo := e.ref("team/cache")

	cold := e.buildWithCache(cacheContext(t, base, nil), dest, "--cache-repo", cacheRepo)
	if cold.pattern != "MMM" {
		t.Fatalf("cold build: %s\n%s", cold.pattern, cold.out)
	}
	coldDigest, err := head(e.reg, "team/app:1")
	if err != nil {
		t.Fatal(err)
	}

	mark := len(e.reg.Requests())
	warm := e.buildWithCache(cacheContext(t, base, nil), dest, "--cache-repo", cacheRepo)
	if warm.pattern != "HHH" {
		t.Fatalf("unchanged rebuild: %s\n%s", warm.pattern, warm.out)
	}
	// Served from the cache: nothing downloaded, nothing extracted, and
	// the same image to the digest.
	if n := e.layerGets(mark, base, dest); n != 0 {
		t.Errorf("the rebuild downloaded %d layers", n)
	}
	if strings.Contains(warm.out, "Unpacked") {
		t.Errorf("the rebuild unpacked a root filesystem:\n%s", warm.out)
	}
	if d, _ := head(e.reg, "team/app:1"); d != coldDigest {
		t.Errorf("rebuild digest %s, cold %s", d, coldDigest)
	}

	for _, tc := range []struct {
		name    string
		files   map[string]string
		args    []string
		pattern string
	}{
		{"one byte", map[string]string{"app/b.txt": "C"}, nil, "MMM"},
		{"rename", map[string]string{"app/b.txt": "", "app/c.txt": "B"}, nil, "MMM"},
		{"build arg", nil, []string{"--build-arg", "V=2"}, "HMM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := cacheContext(t, base, tc.files)
			if tc.files["app/b.txt"] == "" && tc.files != nil {
				os.Remove(filepath.Join(dir, "app/b.txt"))
			}
			if got := e.buildWithCache(dir, dest, append([]string{"--cache-repo", cacheRepo}, tc.args...)...).pattern; got != tc.pattern {
				t.Errorf("got %s, want %s", got, tc.pattern)
			}
		})
	}
	t.Run("COPY not cached on a big base", func(t *testing.T) {
		// kaniko's default leaves COPY out of the cache, so a rebuild runs
		// it, and it needs the base's tree: the base's headers, kept in the
		// cache, give it without a download when the steps after it hit.
		noise := make([]byte, 6<<20)
		rand.NewChaCha8([32]byte{1}).Read(noise)
		noiseLayer := testimage.Layer(t, testimage.File{Path: "opt/noise", Data: string(noise)})
		big := e.push("base/big:1", testimage.Image(t, testimage.DefaultEnv, nil,
			append(mustLayers(t, testimage.Busybox(t)), noiseLayer)...))
		noiseDigest, err := noiseLayer.Digest()
		if err != nil {
			t.Fatal(err)
		}
		repo := e.ref("team/cache-big")
		if got := e.buildWithCache(cacheContext(t, big, nil), dest, "--cache-repo", repo, "--cache-copy-layers=false").pattern; got != "MMM" {
			t.Fatalf("cold: %s", got)
		}
		mark := len(e.reg.Requests())
		warm := e.buildWithCache(cacheContext(t, big, nil), dest, "--cache-repo", repo, "--cache-copy-layers=false")
		if warm.pattern != "MHH" {
			t.Fatalf("rebuild: %s\n%s", warm.pattern, warm.out)
		}
		// The busybox layer is below the size worth a headers entry: read.
		for _, r := range e.reg.Requests()[mark:] {
			if r.Method == http.MethodGet && strings.HasSuffix(r.Path, "/blobs/"+noiseDigest.String()) {
				t.Errorf("the rebuild downloaded the big base layer: %s", r.Path)
			}
		}
		if strings.Contains(warm.out, "Unpacked") || !strings.Contains(warm.out, "come from the cache") {
			t.Errorf("the rebuild unpacked its base, or did not take its headers from the cache:\n%s", warm.out)
		}
	})
	t.Run("chmod", func(t *testing.T) {
		dir := cacheContext(t, base, nil)
		os.Chmod(filepath.Join(dir, "app/b.txt"), 0o600)
		if got := e.buildWithCache(dir, dest, "--cache-repo", cacheRepo).pattern; got != "MMM" {
			t.Errorf("got %s", got)
		}
	})
	t.Run("mtime only", func(t *testing.T) {
		dir := cacheContext(t, base, nil)
		os.Chtimes(filepath.Join(dir, "app/b.txt"), testEpoch, testEpoch)
		if got := e.buildWithCache(dir, dest, "--cache-repo", cacheRepo).pattern; got != "HHH" {
			t.Errorf("got %s", got)
		}
	})
	t.Run("base image", func(t *testing.T) {
		other := e.push("base/other:1", testimage.Image(t, testimage.DefaultEnv, nil,
			append(mustLayers(t, testimage.Busybox(t)), testimage.Layer(t, testimage.File{Path: "extra", Data: "x"}))...))
		if got := e.buildWithCache(cacheContext(t, other, nil), dest, "--cache-repo", cacheRepo).pattern; got != "MMM" {
			t.Errorf("got %s", got)
		}
	})
	t.Run("no push cache", func(t *testing.T) {
		dir := cacheContext(t, base, map[string]string{"app/a.txt": "fresh"})
		e.buildWithCache(dir, dest, "--cache-repo", cacheRepo, "--no-push-cache")
		if got := e.buildWithCache(dir, dest, "--cache-repo", cacheRepo).pattern; got != "MMM" {
			t.Errorf("after --no-push-cache: %s", got)
		}
	})
	t.Run("default cache repository", func(t *testing.T) {
		// Without --cache-repo, kaniko's default: <destination>/cache.
		e.buildWithCache(cacheContext(t, base, nil), e.ref("team/other:1"))
		if got := e.buildWithCache(cacheContext(t, base, nil), e.ref("team/other:1")).pattern; got != "HHH" {
			t.Errorf("got %s", got)
		}
	})
	t.Run("secrets reach no cache entry", func(t *testing.T) {
		scanRepository(t, e, "team/cache", []byte(cacheSecret))
		scanRepository(t, e, "team/app", []byte(cacheSecret))
	})
}

// scanRepository fails t if any blob of any tag of repo contains secret.
func scanRepository(t *testing.T, e *env, repo string, secret []byte) {
	t.Helper()
	r, err := name.NewRepository(e.ref(repo))
	if err != nil {
		t.Fatal(err)
	}
	tags, err := remote.List(r, e.reg.RemoteOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	if len(tags) == 0 {
		t.Fatalf("%s has no tags", repo)
	}
	for _, tag := range tags {
		img := e.pull(e.ref(repo + ":" + tag))
		raw, _ := img.RawConfigFile()
		manifest, _ := img.RawManifest()
		if bytes.Contains(raw, secret) || bytes.Contains(manifest, secret) {
			t.Errorf("%s:%s: the secret is in the config or manifest", repo, tag)
		}
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range layers {
			rc, err := l.Uncompressed()
			if err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(rc)
			rc.Close()
			if bytes.Contains(data, secret) {
				d, _ := l.Digest()
				t.Errorf("%s:%s: layer %s holds the secret", repo, tag, d)
			}
		}
	}
}

func TestLayerCacheInLayoutDirectory(t *testing.T) {
	testutil.RequireRoot(t, "RUN with chroot isolation")
	e := newEnv(t)
	base := pushBusybox(e)
	dest := e.ref("team/app:1")
	dir := t.TempDir()
	repo := "oci:" + dir
	if got := e.buildWithCache(cacheContext(t, base, nil), dest, "--cache-repo", repo).pattern; got != "MMM" {
		t.Fatalf("cold: %s", got)
	}
	if got := e.buildWithCache(cacheContext(t, base, nil), dest, "--cache-repo", repo).pattern; got != "HHH" {
		t.Fatalf("warm: %s", got)
	}
	t.Run("ttl", func(t *testing.T) {
		if got := e.buildWithCache(cacheContext(t, base, nil), dest, "--cache-repo", repo, "--cache-ttl", "1ns").pattern; got != "MMM" {
			t.Errorf("expired entries served: %s", got)
		}
	})
	t.Run("corrupt blob", func(t *testing.T) {
		// Damage a layer of an entry, keeping its size.
		idx, err := layout.ImageIndexFromPath(dir)
		if err != nil {
			t.Fatal(err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		var blob string
		for _, m := range im.Manifests {
			img, err := idx.Image(m.Digest)
			if err != nil {
				t.Fatal(err)
			}
			if ls := mustLayers(t, img); len(ls) > 0 {
				d, _ := ls[0].Digest()
				blob = filepath.Join(dir, "blobs", d.Algorithm, d.Hex)
				break
			}
		}
		data, err := os.ReadFile(blob)
		if err != nil {
			t.Fatal(err)
		}
		data[len(data)/2] ^= 0xff
		if err := os.WriteFile(blob, data, 0o644); err != nil {
			t.Fatal(err)
		}
		b := e.buildWithCache(cacheContext(t, base, nil), dest, "--cache-repo", repo)
		if !strings.Contains(b.pattern, "M") || len(b.warnings) != 1 || !strings.Contains(b.warnings[0], "damaged") {
			t.Errorf("pattern %s, warnings %q", b.pattern, b.warnings)
		}
	})
	t.Run("concurrent builds", func(t *testing.T) {
		fresh := "oci:" + t.TempDir()
		var wg sync.WaitGroup
		outs := make([]cacheBuild, 2)
		for i := range outs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				outs[i] = e.buildWithCache(cacheContext(t, base, nil), e.ref(fmt.Sprintf("team/c%d:1", i)), "--cache-repo", fresh)
			}()
		}
		wg.Wait()
		for i, o := range outs {
			if len(o.warnings) != 0 {
				t.Errorf("build %d warned: %q", i, o.warnings)
			}
		}
		if got := e.buildWithCache(cacheContext(t, base, nil), dest, "--cache-repo", fresh).pattern; got != "HHH" {
			t.Errorf("after two concurrent writers: %s", got)
		}
	})
}

func TestLayerCacheOutOfReach(t *testing.T) {
	testutil.RequireRoot(t, "RUN with chroot isolation")
	e := newEnv(t)
	base := pushBusybox(e)
	b := e.buildWithCache(cacheContext(t, base, nil), e.ref("team/app:1"), "--cache-repo", "127.0.0.1:1/team/cache",
		"--insecure-registry", "127.0.0.1:1", "--push-retry", "0", "--image-download-retry", "0")
	if b.pattern != "MMM" {
		t.Errorf("pattern %s", b.pattern)
	}
	var cacheWarnings []string
	for _, w := range b.warnings {
		if strings.Contains(w, "127.0.0.1:1/team/cache") {
			cacheWarnings = append(cacheWarnings, w)
		}
	}
	if len(cacheWarnings) != 1 {
		t.Errorf("want one warning about the cache, got %q", b.warnings)
	}
}

// A token registry whose robot account may only push to the team project:
// the cache repository elsewhere fails the probe, naming it; in the
// project, the cache works.
func TestLayerCacheWithTokenAuth(t *testing.T) {
	testutil.RequireRoot(t, "RUN with chroot isolation")
	e := newEnv(t, testregistry.WithTokenAuth("ci", "ci-secret"),
		testregistry.WithTokenAccount("robot$team+ci", "robot-secret", "team", "pull", "push"))
	e.push("team/busybox:1", testimage.Busybox(t))
	base := e.ref("team/busybox:1")
	cfg := dockerConfigFor(t, e.reg.Host, "robot$team+ci", "robot-secret")
	args := []string{"--docker-config", cfg, "--registry-certificate", e.reg.Host + "=" + e.reg.CAFile}
	dir := cacheContext(t, base, nil)
	r := e.tryBuild(dir, append([]string{"-d", e.ref("team/app:1"), "--cache", "--cache-repo", e.ref("other/cache")}, args...)...)
	wantOutput(t, r, false, "the layer cache repository (--cache-repo)", e.ref("other/cache"), "--no-push-cache")
	for _, want := range []string{"MMM", "HHH"} {
		if got := e.buildWithCache(dir, e.ref("team/app:1"), append([]string{"--cache-repo", e.ref("team/cache")}, args...)...).pattern; got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
}

// testEpoch is an mtime far from any build's.
var testEpoch = time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)

func mustLayers(t *testing.T, img v1.Image) []v1.Layer {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	return ls
}
