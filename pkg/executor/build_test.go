package executor

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/testimage"
	"github.com/kiln-build/kiln/pkg/sandbox"
)

func TestMetadataInstructions(t *testing.T) {
	df := `FROM base
ARG VERSION=1.0
ENV A=1 B="two words"
LABEL org.example.version=$VERSION org.example.b="$B"
EXPOSE 80 53/udp
USER app
WORKDIR /srv/app
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --retries=2 CMD ["check"]
SHELL ["/bin/bash", "-c"]
ONBUILD COPY . /src
CMD echo $A
ENTRYPOINT ["/entry"]
MAINTAINER someone
`
	tb := newTestBuild(t, df, "", nil)
	img := tb.run()
	cf := configOf(t, img)
	c := cf.Config
	if !slices.Contains(c.Env, "A=1") || !slices.Contains(c.Env, "B=two words") || !slices.Contains(c.Env, testimage.DefaultEnv[0]) {
		t.Errorf("Env = %q", c.Env)
	}
	if want := map[string]string{"org.example.version": "1.0", "org.example.b": "two words"}; !reflect.DeepEqual(c.Labels, want) {
		t.Errorf("Labels = %v, want %v", c.Labels, want)
	}
	if want := map[string]struct{}{"80/tcp": {}, "53/udp": {}}; !reflect.DeepEqual(c.ExposedPorts, want) {
		t.Errorf("ExposedPorts = %v", c.ExposedPorts)
	}
	if c.User != "app" || c.WorkingDir != "/srv/app" || c.StopSignal != "SIGINT" {
		t.Errorf("User %q, WorkingDir %q, StopSignal %q", c.User, c.WorkingDir, c.StopSignal)
	}
	if c.Healthcheck == nil || !reflect.DeepEqual(c.Healthcheck.Test, []string{"CMD", "check"}) ||
		c.Healthcheck.Interval != 5*time.Second || c.Healthcheck.Retries != 2 {
		t.Errorf("Healthcheck = %+v", c.Healthcheck)
	}
	if !reflect.DeepEqual(c.Shell, []string{"/bin/bash", "-c"}) || !reflect.DeepEqual(c.OnBuild, []string{"COPY . /src"}) {
		t.Errorf("Shell %q, OnBuild %q", c.Shell, c.OnBuild)
	}
	// CMD set in the stage survives the ENTRYPOINT after it, in the SHELL of its time.
	if !reflect.DeepEqual(c.Cmd, []string{"/bin/bash", "-c", "echo $A"}) || !reflect.DeepEqual(c.Entrypoint, []string{"/entry"}) {
		t.Errorf("Cmd %q, Entrypoint %q", c.Cmd, c.Entrypoint)
	}
	if cf.Author != "someone" {
		t.Errorf("Author = %q", cf.Author)
	}

	// One history entry per instruction; only WORKDIR, which created the
	// directories, has a layer.
	var created []string
	for _, h := range cf.History[1:] { // [0] is the base image's
		created = append(created, h.CreatedBy)
		if h.EmptyLayer != !strings.HasPrefix(h.CreatedBy, "WORKDIR") {
			t.Errorf("history %q: empty layer %v", h.CreatedBy, h.EmptyLayer)
		}
	}
	// Build arguments are recorded by name: values may be secrets.
	if len(created) != 13 || created[0] != "ARG VERSION" || created[5] != "WORKDIR /srv/app" {
		t.Errorf("history:\n%s", strings.Join(created, "\n"))
	}
	files := flatten(t, img)
	for _, d := range []string{"/srv", "/srv/app"} {
		if f, ok := files[d]; !ok || f.uid != 1000 || f.gid != 1000 || f.mode != 0o755 {
			t.Errorf("%s = %+v, want a directory 0755 owned by app", d, f)
		}
	}
	if got := layerPaths(t, img, 1); !reflect.DeepEqual(got, [][]string{{"/srv", "/srv/app"}}) {
		t.Errorf("new layers: %q", got)
	}
	if n := tb.source.count("base"); n != 1 {
		t.Errorf("base pulled %d times", n)
	}
}

func TestCopyFromContext(t *testing.T) {
	df := `FROM base
COPY --chown=app:staff a.txt /dst/
COPY --chmod=0600 dir/ /d2/
ADD a.txt /data/keep
`
	ctx := contextFiles(map[string]string{"a.txt": "A", "dir/x": "X", "dir/y/z": "Z", "ignored": "-"})
	tb := newTestBuild(t, df, "", nil).with(WithBuildContext(ctx))
	img := tb.run()
	files := flatten(t, img)
	check := func(p, data string, mode int64, uid, gid int) {
		t.Helper()
		f, ok := files[p]
		if !ok || f.data != data || f.mode != mode || f.uid != uid || f.gid != gid {
			t.Errorf("%s = %+v (present %v), want %q mode %o owner %d:%d", p, f, ok, data, mode, uid, gid)
		}
	}
	check("/dst/a.txt", "A", 0o644, 1000, 50)
	check("/d2/x", "X", 0o600, 0, 0)
	check("/d2/y/z", "Z", 0o600, 0, 0)
	check("/data/keep", "A", 0o644, 0, 0)
	if _, ok := files["/d2/ignored"]; ok {
		t.Error("COPY dir/ copied a file outside dir")
	}
	if got := layerPaths(t, img, 1); len(got) != 3 {
		t.Errorf("%d new layers, want 3: %q", len(got), got)
	}
	// No RUN: nothing was extracted.
	if lines := tb.messages("npacked"); len(lines) != 0 {
		t.Errorf("a build without RUN unpacked its base: %q", lines)
	}
}

func TestMultiStageSchedulingAndTarget(t *testing.T) {
	df := `FROM base AS a
COPY a.txt /a
FROM other AS b
COPY b.txt /b
FROM missing AS unused
COPY a.txt /x
FROM scratch AS final
COPY --from=a /a /a
COPY --from=b /b /b
`
	ctx := contextFiles(map[string]string{"a.txt": "A", "b.txt": "B"})
	images := map[string]v1.Image{"other": baseImage(t)}

	t.Run("independent stages build concurrently", func(t *testing.T) {
		tb := newTestBuild(t, df, "", images).with(WithBuildContext(ctx), WithJobs(2))
		// The pull of "base" returns only once "other" is being pulled:
		// with two jobs, stage b starts while a waits.
		holdPull(t, tb.source, "base", "other", "stage b did not start while stage a was pulling its base")
		img := tb.run()
		files := flatten(t, img)
		if files["/a"].data != "A" || files["/b"].data != "B" || len(files) != 2 {
			t.Errorf("final image: %+v", files)
		}
		if n := tb.source.count("missing"); n != 0 {
			t.Errorf("the unused stage's base was pulled %d times", n)
		}
	})

	t.Run("a stage's base is pulled while the stages it copies from build", func(t *testing.T) {
		// One job: stage "late" can run only after "early", but its base
		// is pulled at once, and "early" cannot finish before that.
		const df = "FROM base AS early\nCOPY a.txt /a\nFROM other AS late\nCOPY --from=early /a /a\n"
		tb := newTestBuild(t, df, "", images).with(WithBuildContext(ctx), WithJobs(1))
		holdPull(t, tb.source, "base", "other", "the last stage's base was not pulled while the first stage built")
		if files := flatten(t, tb.run()); files["/a"].data != "A" || files["/data/keep"].data != "base" {
			t.Errorf("final image: %+v", files)
		}
		if n := tb.source.count("other"); n != 1 {
			t.Errorf("the base was pulled %d times", n)
		}
	})

	t.Run("target", func(t *testing.T) {
		tb := newTestBuild(t, df, "a", images).with(WithBuildContext(ctx))
		img := tb.run()
		files := flatten(t, img)
		if files["/a"].data != "A" || files["/data/keep"].data != "base" {
			t.Errorf("target a: %+v", files)
		}
		if _, ok := files["/b"]; ok {
			t.Error("target a has stage b's file")
		}
		if tb.source.count("other") != 0 || tb.source.count("missing") != 0 {
			t.Errorf("stages the target does not need were pulled: %v", tb.source.pulls)
		}
	})

	t.Run("a failing stage fails the build and names the stage", func(t *testing.T) {
		tb := newTestBuild(t, strings.Replace(df, "FROM other AS b", "FROM nowhere AS b", 1), "", images).with(WithBuildContext(ctx))
		_, err := tb.runErr(tb.builder())
		if err == nil || !strings.Contains(err.Error(), `"nowhere"`) {
			t.Errorf("err = %v", err)
		}
	})
}

// countingRoots records the roots a build allocates, by stage.
type countingRoots struct {
	rootAllocator
	mu    sync.Mutex
	roots map[string][]rootFS
}

func (c *countingRoots) New(ctx context.Context, name string, layers []v1.Layer) (rootFS, int, error) {
	r, n, err := c.rootAllocator.New(ctx, name, layers)
	if err == nil {
		c.mu.Lock()
		c.roots[name] = append(c.roots[name], r)
		c.mu.Unlock()
	}
	return r, n, err
}

func (c *countingRoots) live(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	rs := c.roots[name]
	return len(rs) > 0 && rs[len(rs)-1].Live()
}

func countRoots(b *Builder) *countingRoots {
	c := &countingRoots{rootAllocator: b.roots, roots: map[string][]rootFS{}}
	b.roots = c
	return c
}

func TestStageRootAdoption(t *testing.T) {
	df := `FROM base AS build
RUN write /built yes
COPY a.txt /a.txt
FROM build
RUN copy /a.txt /second
`
	tb := newTestBuild(t, df, "", nil).with(WithBuildContext(contextFiles(map[string]string{"a.txt": "A"})))
	b := tb.builder()
	roots := countRoots(b)
	img, err := tb.runErr(b)
	if err != nil {
		t.Fatal(err)
	}
	files := flatten(t, img)
	if files["/built"].data != "yes" || files["/second"].data != "A" {
		t.Errorf("image: %+v", files)
	}
	if len(roots.roots["build"]) != 1 || len(roots.roots["1"]) != 0 {
		t.Errorf("roots allocated: %v, want one, for stage build", roots.roots)
	}
	if got := tb.messages("continuing in its root filesystem"); len(got) != 1 {
		t.Errorf("adoption not logged: %q", tb.messages("FROM"))
	}
	if got := tb.messages("npacked"); len(got) != 1 {
		t.Errorf("unpacked %d times: %q", len(got), got)
	}
	// The child's layers: only what its RUN changed.
	if got := layerPaths(t, img, 3); !reflect.DeepEqual(got, [][]string{{"/second"}}) {
		t.Errorf("child layers %q", got)
	}
	if left := treeOf(t, rootsDir(tb.workDir)); len(left) != 0 {
		t.Errorf("roots left after the build: %q", left)
	}
}

func TestStageRootReleasedAfterLastUser(t *testing.T) {
	df := `FROM base AS build
RUN write /built yes
FROM base AS user1
COPY --from=build /built /u1
RUN write /one 1
FROM base AS user2
COPY --from=build /built /u2
COPY --from=user1 /one /one
RUN write /two 2
FROM build AS final
COPY --from=user1 /u1 /u1
COPY --from=user2 /u2 /u2
RUN write /three 3
`
	tb := newTestBuild(t, df, "", nil).with(WithJobs(1))
	b := tb.builder()
	roots := countRoots(b)
	var mu sync.Mutex
	seen := map[string]map[string]bool{}
	hook := &hookSandbox{scriptSandbox: tb.sandbox, before: func(spec *sandbox.Spec) {
		mu.Lock()
		defer mu.Unlock()
		state := map[string]bool{}
		for _, n := range []string{"build", "user1", "user2", "final"} {
			state[n] = roots.live(n)
		}
		seen[spec.Args[len(spec.Args)-1]] = state
	}}
	b.opts.sandbox = hook
	img, err := tb.runErr(b)
	if err != nil {
		t.Fatal(err)
	}
	files := flatten(t, img)
	if files["/u1"].data != "yes" || files["/u2"].data != "yes" || files["/three"].data != "3" {
		t.Errorf("image: %+v", files)
	}
	// build has three users (user1, user2, final): its root stays while any
	// of them is to come; final, its last user, takes it over.
	if s := seen["write /two 2"]; !s["build"] || !s["user1"] {
		t.Errorf("during user2's RUN: %v (build and user1 are still needed)", s)
	}
	if s := seen["write /three 3"]; !s["build"] || !s["user1"] || !s["user2"] {
		t.Errorf("during final's RUN: %v (its own root and its COPY --from sources)", s)
	}
	if len(roots.roots["final"]) != 0 || len(tb.messages("continuing in its root filesystem")) != 1 {
		t.Errorf("final did not take over build's root: roots %v", roots.roots)
	}
	for name := range roots.roots {
		if roots.live(name) {
			t.Errorf("root of %s still on disk after the build", name)
		}
	}
}

func TestStageRootReleasedWhenUnused(t *testing.T) {
	df := `FROM base AS build
RUN write /built yes
FROM base AS other
RUN write /o 1
FROM base
COPY --from=build /built /b
COPY --from=other /o /o
RUN write /last 1
`
	tb := newTestBuild(t, df, "", nil).with(WithJobs(1))
	b := tb.builder()
	roots := countRoots(b)
	var during map[string]bool
	b.opts.sandbox = &hookSandbox{scriptSandbox: tb.sandbox, before: func(spec *sandbox.Spec) {
		if strings.Contains(spec.Args[len(spec.Args)-1], "/last") {
			during = map[string]bool{"build": roots.live("build"), "other": roots.live("other")}
		}
	}}
	if _, err := tb.runErr(b); err != nil {
		t.Fatal(err)
	}
	// The last stage reads build and other only through COPY --from; once
	// it started its own RUN they are still its dependencies: their roots
	// go when it finishes.
	if !during["build"] || !during["other"] {
		t.Errorf("dependencies released before their user finished: %v", during)
	}
}

// hookSandbox calls before ahead of each RUN.
type hookSandbox struct {
	*scriptSandbox
	before func(*sandbox.Spec)
}

func (h *hookSandbox) Run(ctx context.Context, spec *sandbox.Spec) error {
	h.before(spec)
	return h.scriptSandbox.Run(ctx, spec)
}

func TestBuildCancelled(t *testing.T) {
	tb := newTestBuild(t, "FROM base\nRUN write /x 1\n", "", nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := tb.builder().Build(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

// VOLUME changes only the config (no directory, no layer) and WORKDIR keeps
// an absolute path as written, as BuildKit does; what a RUN writes in a
// declared volume is discarded.
func TestVolumeAndWorkdirAsBuildKit(t *testing.T) {
	df := `FROM base
WORKDIR /w/
VOLUME /vol
RUN write /w/y 2; rm /vol; write /vol 1
`
	img := newTestBuild(t, df, "", nil).run()
	cf := configOf(t, img)
	if cf.Config.WorkingDir != "/w/" || !reflect.DeepEqual(cf.Config.Volumes, map[string]struct{}{"/vol": {}}) {
		t.Errorf("WorkingDir %q, Volumes %v", cf.Config.WorkingDir, cf.Config.Volumes)
	}
	files := flatten(t, img)
	if _, ok := files["/vol"]; ok {
		t.Error("/vol is in the image")
	}
	if files["/w/y"].data != "2" || files["/w"].typ != '5' {
		t.Errorf("/w: %+v, /w/y: %+v", files["/w"], files["/w/y"])
	}
	h := cf.History[len(cf.History)-2]
	if h.CreatedBy != `VOLUME ["/vol"]` || !h.EmptyLayer {
		t.Errorf("VOLUME history %+v", h)
	}
}

func TestLayerLimit(t *testing.T) {
	var df strings.Builder
	df.WriteString("FROM base\n")
	for i := 0; i < 6; i++ {
		fmt.Fprintf(&df, "RUN write /f%d %d\n", i, i)
	}
	// The base has one layer: seven in all.
	tb := newTestBuild(t, df.String(), "", nil).with(WithMaxLayers(6))
	if _, err := tb.runErr(tb.builder()); err == nil || !strings.Contains(err.Error(), "7 layers, more than container runtimes can stack (6)") {
		t.Errorf("err = %v", err)
	}
	newTestBuild(t, df.String(), "", nil).with(WithMaxLayers(7)).run()
	newTestBuild(t, df.String(), "", nil).with(WithMaxLayers(0)).run()
}

// Every layer of the image is handed to the publisher as soon as it is made
// (before the next step runs); layers of other stages are not.
func TestLayersPublishedAsMade(t *testing.T) {
	df := `FROM base AS other
RUN write /o 1
FROM base AS parent
RUN write /p 1
FROM parent
COPY --from=other /o /o
RUN write /c 1
`
	tb := newTestBuild(t, df, "", nil).with(WithJobs(1))
	var mu sync.Mutex
	var published []v1.Layer
	publishedBeforeRun := map[string]int{}
	tb.with(WithLayerPublisher(func(l v1.Layer) {
		mu.Lock()
		defer mu.Unlock()
		published = append(published, l)
	}))
	b := tb.builder()
	b.opts.sandbox = &hookSandbox{scriptSandbox: tb.sandbox, before: func(spec *sandbox.Spec) {
		mu.Lock()
		defer mu.Unlock()
		publishedBeforeRun[spec.Args[len(spec.Args)-1]] = len(published)
	}}
	img, err := tb.runErr(b)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	want := layers[1:] // the base's layer is pulled, not made
	if len(published) != len(want) {
		t.Fatalf("published %d layers, the image made %d", len(published), len(want))
	}
	for i := range want {
		a, _ := published[i].Digest()
		b, _ := want[i].Digest()
		if a != b {
			t.Errorf("layer %d: published %s, image has %s", i, a, b)
		}
	}
	// parent's layer was out before the last stage's COPY layer, which was
	// out before its RUN.
	if publishedBeforeRun["write /c 1"] != 2 {
		t.Errorf("before the last RUN, %d layers were published, want 2", publishedBeforeRun["write /c 1"])
	}
}
