package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
)

// Builds sharing a --kiln-dir (a node-local volume in CI) extract a base
// layer once: the next build's RUN root is an overlay of the layers
// already in the store, keyed by diffID whatever image names them, and its
// upper directory is the RUN's diff, deletions included.
func TestLayerStoreSharedAcrossBuilds(t *testing.T) {
	testutil.RequireRoot(t, "RUN with chroot isolation on overlay mounts")
	e := newEnv(t)
	base := pushBusybox(e)
	kilnDir := t.TempDir()
	build := func(dockerfile, dest string, extra ...string) string {
		t.Helper()
		dir := writeFiles(t, map[string]string{"Dockerfile": dockerfile})
		args := append([]string{"build", "--context", dir, "--insecure-registry", e.reg.Host, "--kiln-dir", kilnDir,
			"--isolation", "chroot", "-d", dest}, extra...)
		r := e.run(dir, args)
		if r.err != nil {
			t.Fatalf("kiln build: %v\n%s", r.err, r.out)
		}
		return r.out
	}

	first := e.ref("test/store-first:1")
	out := build("FROM "+base+"\nRUN rm /bin/vi && echo one > /one\n", first)
	wantLine(t, out, "root is an overlay of 1 layers: 1 extracted now, 0 already in the layer store")

	// The same base again, from another Dockerfile: nothing is extracted.
	out = build("FROM "+base+"\nRUN echo two > /two\n", e.ref("test/store-again:1"))
	wantLine(t, out, "root is an overlay of 1 layers: 0 extracted now, 1 already in the layer store")

	// The first image as a base: its busybox layer comes from the store,
	// only its RUN layer is new.
	second := e.ref("test/store-second:1")
	out = build("FROM "+first+"\nRUN rm /one && mkdir /dir && echo three > /dir/three\n", second)
	wantLine(t, out, "root is an overlay of 2 layers: 1 extracted now, 1 already in the layer store")

	fs := flatten(t, e.pull(second))
	for _, gone := range []string{"/bin/vi", "/one"} {
		if _, ok := fs[gone]; ok {
			t.Errorf("%s was deleted by a RUN but is in the image", gone)
		}
	}
	wantFile(t, fs, "/dir/three", "three\n", 0o644, 0, 0)
	if n := len(config(t, e.pull(second)).RootFS.DiffIDs); n != 3 {
		t.Errorf("%d layers, want 3", n)
	}
	entries, err := os.ReadDir(filepath.Join(kilnDir, "layers"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, en := range entries {
		if en.IsDir() {
			names = append(names, en.Name())
		}
	}
	if len(names) != 2 {
		t.Errorf("layer store holds %q, want the busybox layer and the first RUN's", names)
	}

	// Turned off, the build extracts into a directory of its own.
	out = build("FROM "+base+"\nRUN echo four > /four\n", e.ref("test/store-off:1"), "--layer-store-size", "0")
	if strings.Contains(out, "overlay") {
		t.Errorf("--layer-store-size 0 still mounted an overlay:\n%s", out)
	}
}

// wantLine fails unless out has a line containing want.
func wantLine(t *testing.T, out, want string) {
	t.Helper()
	if !strings.Contains(out, want) {
		t.Errorf("no line with %q in:\n%s", want, out)
	}
}
