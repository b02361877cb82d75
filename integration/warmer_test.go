package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testimage"
	"github.com/kiln-build/kiln/internal/testutil"
)

// The warmer stores base images in a directory; a build with --cache-dir
// then takes a base pinned by digest from there, with its registry gone.
func TestWarmerThenBuildWithoutRegistry(t *testing.T) {
	testutil.RequireRoot(t, "RUN with chroot isolation")
	cacheDir := t.TempDir()
	var pinned, tagged string
	t.Run("warm", func(t *testing.T) {
		e := newEnv(t)
		tagged = e.push("base/busybox:1", testimage.Busybox(t))
		d, err := head(e.reg, "base/busybox:1")
		if err != nil {
			t.Fatal(err)
		}
		pinned = e.ref("base/busybox@" + d.String())
		other := e.push("base/other:2", testimage.Busybox(t))

		r := e.run(t.TempDir(), []string{"cache", "warm", "--image", pinned, "--cache-dir", cacheDir, "--insecure-registry", e.reg.Host})
		wantOutput(t, r, true, "Stored")
		// kaniko's binary name and flags, warming a Dockerfile's FROMs.
		warmer := filepath.Join(t.TempDir(), "warmer")
		if err := os.Symlink(e.kiln, warmer); err != nil {
			t.Fatal(err)
		}
		dir := writeFiles(t, map[string]string{"Dockerfile": "ARG TAG=2\nFROM " + tagged + " AS a\nFROM " + strings.TrimSuffix(other, ":2") + ":${TAG}\nCOPY --from=a /bin/busybox /x\n"})
		e2 := *e
		e2.kiln = warmer
		r = e2.run(dir, []string{"--dockerfile", "Dockerfile", "-c", cacheDir, "--insecure-registry", e.reg.Host})
		wantOutput(t, r, true, `Stored "`+tagged+`"`, `Stored "`+other+`"`)
		// Warm again: nothing to fetch.
		r = e.run(t.TempDir(), []string{"warmer", "--image", tagged, "--cache-dir", cacheDir, "--insecure-registry", e.reg.Host})
		wantOutput(t, r, true, "is already in")
	})
	if pinned == "" {
		t.Fatal("warming failed")
	}
	// That registry is gone: only the cache directory can serve the base.
	e := newEnv(t)
	dir := writeFiles(t, map[string]string{"Dockerfile": "FROM " + pinned + "\nRUN echo built > /built\n"})
	out := e.build(dir, "--no-push", "--tar-path", filepath.Join(t.TempDir(), "out.tar"), "-d", "app:1", "--cache-dir", cacheDir)
	if !strings.Contains(out, "from --cache-dir") {
		t.Errorf("the base did not come from --cache-dir:\n%s", out)
	}
	// A tag within --cache-ttl is served too; an expired one is pulled
	// (and fails here, its registry being gone).
	dir = writeFiles(t, map[string]string{"Dockerfile": "FROM " + tagged + "\nRUN echo built > /built\n"})
	e.build(dir, "--no-push", "-d", "app:1", "--cache-dir", cacheDir)
	r := e.tryBuild(dir, "--no-push", "-d", "app:1", "--cache-dir", cacheDir, "--cache-ttl", "1ns")
	if r.err == nil {
		t.Errorf("an expired tag was served from --cache-dir:\n%s", r.out)
	}
}
