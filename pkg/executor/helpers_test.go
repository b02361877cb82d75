package executor

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/kiln-build/kiln/internal/testimage"
	"github.com/kiln-build/kiln/pkg/dockerfile"
	"github.com/kiln-build/kiln/pkg/fsview"
	"github.com/kiln-build/kiln/pkg/sandbox"
)

// fakeSource serves generated images by reference, counting pulls. A
// reference it does not know fails like a registry's "not found".
type fakeSource struct {
	mu     sync.Mutex
	images map[string]v1.Image
	pulls  map[string]int
	// gate, when set, is called before a pull returns (to hold it).
	gate func(ref string)
}

func newFakeSource(images map[string]v1.Image) *fakeSource {
	return &fakeSource{images: images, pulls: map[string]int{}}
}

func (f *fakeSource) Pull(_ context.Context, ref string, _ v1.Platform) (v1.Image, error) {
	f.mu.Lock()
	img, ok := f.images[ref]
	f.pulls[ref]++
	gate := f.gate
	f.mu.Unlock()
	if gate != nil {
		gate(ref)
	}
	if !ok {
		return nil, fmt.Errorf("image %q: not found", ref)
	}
	return img, nil
}

// holdPull makes the pull of held wait until until is being pulled, or
// fails the test with msg after 10 seconds.
func holdPull(t *testing.T, f *fakeSource, held, until, msg string) {
	started := make(chan struct{})
	var once sync.Once
	f.gate = func(ref string) {
		switch ref {
		case until:
			once.Do(func() { close(started) })
		case held:
			select {
			case <-started:
			case <-time.After(10 * time.Second):
				t.Error(msg)
			}
		}
	}
}

func (f *fakeSource) count(ref string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pulls[ref]
}

// baseImage is a small image owned by the current user (so that extracting
// it needs no root): /etc/passwd with root and "app" (uid 1000, in group
// "staff" as well), /etc/group, /bin and /data/keep.
func baseImage(t testing.TB) v1.Image {
	uid, gid := os.Getuid(), os.Getgid()
	own := func(f testimage.File) testimage.File { f.UID, f.GID = uid, gid; return f }
	l := testimage.Layer(t,
		own(testimage.File{Path: "etc", Dir: true}),
		own(testimage.File{Path: "etc/passwd", Data: "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"}),
		own(testimage.File{Path: "etc/group", Data: "root:x:0:\napp:x:1000:\nstaff:x:50:app\n"}),
		own(testimage.File{Path: "bin", Dir: true}),
		own(testimage.File{Path: "data", Dir: true}),
		own(testimage.File{Path: "data/keep", Data: "base"}),
	)
	return testimage.Image(t, testimage.DefaultEnv, []string{"/bin/sh"}, l)
}

// memContext is a build context held in memory: not on disk, so every
// reader goes through its FS.
type memContext struct{ fs fsview.MapFS }

func (c memContext) FS() fsview.FS { return c.fs }
func (c memContext) Dir() string   { return "" }

// contextFiles is an in-memory context of regular files owned by root.
func contextFiles(files map[string]string) memContext {
	m := fsview.MapFS{}
	for name, data := range files {
		m[name] = &fsview.MapFile{Entry: fsview.Entry{Mode: 0o644}, Data: []byte(data)}
	}
	return memContext{fs: m}
}

// scriptSandbox stands in for the real sandbox (tested in pkg/sandbox and
// end to end in integration/) so that the executor's RUN path runs without
// root. It interprets the last argument of a RUN (or the lines of a script
// run as the only argument) as ";"-separated commands, acting on the root
// on disk and on the RUN's mounts:
//
//	write PATH TEXT   create or replace a file
//	append PATH TEXT  append to a file
//	rm PATH           remove a file or tree
//	copy SRC DST      copy a file (to read a mount into the layer)
//	env NAME PATH     write the value of an environment variable to a file
//	exit N            fail with status N
//
// Paths under a mount's target go to the mount's source, as a bind mount
// would; tmpfs mounts are private directories that vanish after the RUN.
type scriptSandbox struct {
	mode sandbox.Mode
	mu   sync.Mutex
	runs []*sandbox.Spec
}

func (f *scriptSandbox) Mode() sandbox.Mode { return f.mode }

func (f *scriptSandbox) specs() []*sandbox.Spec {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*sandbox.Spec(nil), f.runs...)
}

func (f *scriptSandbox) Run(ctx context.Context, spec *sandbox.Spec) error {
	f.mu.Lock()
	cp := *spec
	f.runs = append(f.runs, &cp)
	f.mu.Unlock()
	if len(spec.Args) == 0 {
		return errors.New("no command")
	}
	tmpfs := map[string]string{}
	defer func() {
		for _, d := range tmpfs {
			os.RemoveAll(d)
		}
	}()
	r := &scriptRun{spec: spec, tmpfs: tmpfs}
	script := spec.Args[len(spec.Args)-1]
	if len(spec.Args) == 1 {
		// An executable: a here-document script with a shebang.
		h, err := r.host(spec.Args[0])
		if err != nil {
			return err
		}
		data, err := os.ReadFile(h)
		if err != nil {
			return err
		}
		_, body, _ := strings.Cut(string(data), "\n")
		script = strings.ReplaceAll(body, "\n", ";")
	}
	for _, line := range strings.Split(script, ";") {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := r.do(strings.Fields(line)); err != nil {
			return err
		}
	}
	return nil
}

type scriptRun struct {
	spec  *sandbox.Spec
	tmpfs map[string]string
}

// host maps a container path to the host: through the deepest mount whose
// target holds it, else inside the root.
func (r *scriptRun) host(p string) (string, error) {
	if !path.IsAbs(p) {
		p = path.Join(r.spec.Dir, p)
	}
	p = path.Clean(p)
	mounts := append([]sandbox.Mount(nil), r.spec.Mounts...)
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i].Target) > len(mounts[j].Target) })
	for _, m := range mounts {
		if !within(p, m.Target) {
			continue
		}
		src := m.Source
		if m.Type == sandbox.MountTmpfs {
			if src = r.tmpfs[m.Target]; src == "" {
				d, err := os.MkdirTemp("", "tmpfs-")
				if err != nil {
					return "", err
				}
				r.tmpfs[m.Target], src = d, d
			}
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, m.Target), "/")
		if rel == "" {
			return src, nil
		}
		return securejoin.SecureJoin(src, rel)
	}
	return securejoin.SecureJoin(r.spec.Rootfs, p)
}

func (r *scriptRun) do(w []string) error {
	if len(w) == 0 {
		return nil
	}
	arg := func(i int) string {
		if i < len(w) {
			return w[i]
		}
		return ""
	}
	switch w[0] {
	case "exit":
		code, err := strconv.Atoi(arg(1))
		if err != nil {
			return err
		}
		fmt.Fprintf(r.spec.Stdout, "exiting with %d\n", code)
		return &sandbox.ExitError{Code: code}
	case "write", "append":
		h, err := r.host(arg(1))
		if err != nil {
			return err
		}
		flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
		if w[0] == "append" {
			flags = os.O_WRONLY | os.O_CREATE | os.O_APPEND
		}
		fh, err := os.OpenFile(h, flags, 0o644)
		if err != nil {
			return err
		}
		_, err = io.WriteString(fh, strings.Join(w[2:], " "))
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		return err
	case "rm":
		h, err := r.host(arg(1))
		if err != nil {
			return err
		}
		return os.RemoveAll(h)
	case "copy":
		src, err := r.host(arg(1))
		if err != nil {
			return err
		}
		dst, err := r.host(arg(2))
		if err != nil {
			return err
		}
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	case "env":
		h, err := r.host(arg(2))
		if err != nil {
			return err
		}
		for _, kv := range r.spec.Env {
			if k, v, _ := strings.Cut(kv, "="); k == arg(1) {
				return os.WriteFile(h, []byte(v), 0o644)
			}
		}
		return os.WriteFile(h, nil, 0o644)
	}
	return fmt.Errorf("script: unknown command %q", w[0])
}

// planDockerfile parses and plans df.
func planDockerfile(df, target string, buildArgs map[string]string) (*dockerfile.Plan, error) {
	d, err := dockerfile.Parse(strings.NewReader(df), "Dockerfile")
	if err != nil {
		return nil, err
	}
	if buildArgs == nil {
		buildArgs = map[string]string{}
	}
	return d.Plan(dockerfile.PlanOptions{Target: target, BuildArgs: buildArgs})
}

// testBuild is a build of a Dockerfile with fakes all around.
type testBuild struct {
	t       *testing.T
	plan    *dockerfile.Plan
	source  *fakeSource
	sandbox *scriptSandbox
	logs    *test.Hook
	workDir string
	opts    []Option
}

// newTestBuild plans dockerfile for target ("" for the last stage) with
// base as the image "base" and any further images given.
func newTestBuild(t *testing.T, df, target string, images map[string]v1.Image) *testBuild {
	t.Helper()
	plan, err := planDockerfile(df, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]v1.Image{"base": baseImage(t)}
	for k, v := range images {
		all[k] = v
	}
	log, hook := test.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	tb := &testBuild{t: t, plan: plan, source: newFakeSource(all), sandbox: &scriptSandbox{mode: sandbox.ModeChroot},
		logs: hook, workDir: t.TempDir()}
	tb.opts = []Option{
		WithImageSource(tb.source),
		WithWorkDir(tb.workDir),
		WithLogger(log),
		WithSandbox(tb.sandbox),
		WithRootless(os.Geteuid() != 0),
		WithPlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH}),
	}
	return tb
}

func (tb *testBuild) with(opts ...Option) *testBuild {
	tb.opts = append(tb.opts, opts...)
	return tb
}

// builder returns the Builder, for tests that look inside it.
func (tb *testBuild) builder() *Builder {
	tb.t.Helper()
	b, err := New(tb.plan, tb.opts...)
	if err != nil {
		tb.t.Fatal(err)
	}
	return b
}

// run builds and validates the image.
func (tb *testBuild) run() v1.Image {
	tb.t.Helper()
	img, err := tb.runErr(tb.builder())
	if err != nil {
		tb.t.Fatal(err)
	}
	return img
}

func (tb *testBuild) runErr(b *Builder) (v1.Image, error) {
	tb.t.Helper()
	img, err := b.Build(context.Background())
	b.Close()
	if err != nil {
		return nil, err
	}
	if err := validate.Image(img); err != nil {
		tb.t.Fatalf("invalid image: %v", err)
	}
	return img, nil
}

// messages lists the log lines containing substr.
func (tb *testBuild) messages(substr string) []string {
	var out []string
	for _, e := range tb.logs.AllEntries() {
		if strings.Contains(e.Message, substr) {
			out = append(out, e.Message)
		}
	}
	return out
}

// flatFile is one file of a flattened image.
type flatFile struct {
	typ      byte
	mode     int64
	uid, gid int
	data     string
	link     string
}

// flatten returns the files of img, layers applied, by path ("/a/b").
func flatten(t testing.TB, img v1.Image) map[string]flatFile {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	out := map[string]flatFile{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[path.Clean("/"+h.Name)] = flatFile{typ: h.Typeflag, mode: h.Mode & 0o7777, uid: h.Uid, gid: h.Gid,
			data: string(data), link: h.Linkname}
	}
	return out
}

// layerFiles returns the paths in each layer of img that its base does not
// have, in order.
func layerPaths(t testing.TB, img v1.Image, skip int) [][]string {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for _, l := range layers[skip:] {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, "/"+strings.TrimSuffix(h.Name, "/"))
		}
		rc.Close()
		out = append(out, names)
	}
	return out
}

// configOf returns img's config.
func configOf(t testing.TB, img v1.Image) *v1.ConfigFile {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cf
}

// treeOf lists what is under dir on the host, for leak checks.
func treeOf(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && p != dir {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}
