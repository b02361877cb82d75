package executor

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/sirupsen/logrus/hooks/test"

	"github.com/kiln-build/kiln/pkg/sandbox"
)

// inPlaceBuild is a build with in-place isolation whose "/" is a temporary
// directory holding a small "executor image": kiln's own files, which are
// protected, and a file of the image, which each stage replaces.
func inPlaceBuild(t *testing.T, df string) (*testBuild, *Builder, string) {
	t.Helper()
	fakeRoot := t.TempDir()
	for p, data := range map[string]string{"kiln/executor": "kiln", "etc/os-release": "executor image", "busybox/sh": "sh"} {
		h := filepath.Join(fakeRoot, p)
		if err := os.MkdirAll(filepath.Dir(h), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(h, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tb := newTestBuild(t, df, "", nil)
	tb.sandbox.mode = sandbox.ModeInPlace
	b := tb.builder()
	if b.opts.jobs != 1 {
		t.Errorf("in-place builds run %d stages at once", b.opts.jobs)
	}
	ip := newInPlaceRoots(tb.workDir, "", b.inPlaceProtected(), b.opts.log)
	ip.dir = fakeRoot
	ip.mounts = func() ([]string, error) { return nil, nil }
	b.roots = ip
	return tb, b, fakeRoot
}

func TestInPlaceRoot(t *testing.T) {
	df := `FROM base AS first
RUN write /first 1
FROM base
COPY --from=first /first /copied
RUN --mount=type=cache,target=/var/cache/x --mount=type=secret,id=tok --mount=type=tmpfs,target=/data copy /run/secrets/tok /seen; append /var/cache/x/log run; write /data/tmp x; write /second 2
RUN <<EOF
#!/bin/busybox sh
write /third 3
EOF
`
	tb, b, fakeRoot := inPlaceBuild(t, df)
	cacheDir := t.TempDir()
	b.opts.cacheDir = cacheDir
	b.opts.secrets = map[string][]byte{"tok": []byte("s3cr3t")}
	before := treeOf(t, fakeRoot)

	var mu sync.Mutex
	var during [][]string
	b.opts.sandbox = &hookSandbox{scriptSandbox: tb.sandbox, before: func(spec *sandbox.Spec) {
		mu.Lock()
		defer mu.Unlock()
		during = append(during, treeOf(t, fakeRoot))
		if spec.Rootfs != fakeRoot || len(spec.Mounts) != 0 {
			t.Errorf("in-place RUN spec: rootfs %q, mounts %v", spec.Rootfs, spec.Mounts)
		}
	}}
	img, err := tb.runErr(b)
	if err != nil {
		t.Fatal(err)
	}
	files := flatten(t, img)
	if files["/copied"].data != "1" || files["/seen"].data != "s3cr3t" || files["/second"].data != "2" || files["/third"].data != "3" {
		t.Errorf("image: %+v", files)
	}
	for _, p := range []string{"/first", "/run/secrets/tok", "/var/cache/x", "/data/tmp", "/dev/pipes/EOF", "/etc/os-release", "/kiln/executor"} {
		if _, ok := files[p]; ok {
			t.Errorf("%s is in the image", p)
		}
	}
	if len(during) != 3 {
		t.Fatalf("%d RUNs", len(during))
	}
	// The second stage's RUN sees its mounts placed as files in "/" (the
	// tmpfs over /data hides what the image has there), the first stage's
	// tree gone and kiln's own files untouched.
	second := strings.Join(during[1], "\n") + "\n"
	for _, p := range []string{"run/secrets/tok", "var/cache/x", "data\n", "kiln/executor", "copied"} {
		if !strings.Contains(second, p) {
			t.Errorf("during the second RUN, %s is missing from /:\n%s", p, second)
		}
	}
	if strings.Contains(second, "\nfirst\n") || strings.Contains(second, "data/keep") {
		t.Errorf("during the second RUN, / holds another stage's files or what a mount hides:\n%s", second)
	}
	if !strings.Contains(strings.Join(during[2], "\n"), "dev/pipes/EOF") {
		t.Errorf("the here-document script was not placed: %q", during[2])
	}
	// Afterwards "/" is what the executor image shipped, and the cache
	// kept what the RUN wrote.
	if after := treeOf(t, fakeRoot); !reflect.DeepEqual(after, before) {
		t.Errorf("/ after the build:\n%q\nwant\n%q", after, before)
	}
	logs, _ := filepath.Glob(filepath.Join(cacheDir, "*", "log"))
	if len(logs) != 1 {
		t.Errorf("cache: %q", logs)
	}
}

// A build killed while "/" held a stage leaves a record behind; the next
// build puts "/" back from it before anything else.
func TestInPlaceRecoversFromAKilledBuild(t *testing.T) {
	ctx := context.Background()
	fakeRoot, state := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(fakeRoot, "shipped"), []byte("executor image"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := treeOf(t, fakeRoot)
	newRoots := func() *inPlaceRoots {
		log, _ := test.NewNullLogger()
		a := newInPlaceRoots(t.TempDir(), state, nil, log)
		a.dir = fakeRoot
		a.mounts = func() ([]string, error) { return nil, nil }
		return a
	}
	first := newRoots()
	if _, _, err := first.New(ctx, "stage", nil); err != nil {
		t.Fatal(err)
	}
	// The stage changes "/", then the build dies: no Close.
	os.Remove(filepath.Join(fakeRoot, "shipped"))
	os.WriteFile(filepath.Join(fakeRoot, "from-the-stage"), []byte("x"), 0o644)
	if _, err := os.Stat(filepath.Join(state, dirtyMarker)); err != nil {
		t.Fatalf("no marker while / is changed: %v", err)
	}

	second := newRoots()
	if _, _, err := second.New(ctx, "stage", nil); err != nil {
		t.Fatal(err)
	}
	if err := second.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if after := treeOf(t, fakeRoot); !reflect.DeepEqual(after, before) {
		t.Errorf("/ after recovery: %q, want %q", after, before)
	}
	if data, _ := os.ReadFile(filepath.Join(fakeRoot, "shipped")); string(data) != "executor image" {
		t.Errorf("shipped = %q", data)
	}
	if left := treeOf(t, state); len(left) != 0 {
		t.Errorf("left in the state dir: %q", left)
	}
}
