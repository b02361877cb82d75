package executor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"golang.org/x/sync/errgroup"

	"github.com/kiln-build/kiln/pkg/dockerfile"
	"github.com/kiln-build/kiln/pkg/fsview"
	"github.com/kiln-build/kiln/pkg/sandbox"
)

// Builder builds the stages of a plan.
type Builder struct {
	plan *dockerfile.Plan
	opts options

	mu      sync.Mutex
	results map[*dockerfile.Stage]*stageFuture
	images  map[string]*imageView // COPY --from=<image> views, by reference
	roots   rootAllocator         // where stage root filesystems live
	cache   *layerCache           // nil without --cache
	headers *cachedHeaders        // layers' headers in the cache; nil without it
	cleaned chan struct{}         // closed once Build's leftovers are removed
	// inImage holds the stages whose layers end in the image: the target
	// and the stages it continues (FROM <stage>).
	inImage map[*dockerfile.Stage]bool
}

// stageFuture is the result of a stage, available once done is closed.
type stageFuture struct {
	done chan struct{}
	base *basePull // the stage's base image, pulled as the build starts
	res  *stageResult
	err  error
	// users counts the stages still to finish that use this one (FROM,
	// COPY --from, RUN --mount from=); at zero its root filesystem can go.
	users int
}

// New returns a Builder for plan.
func New(plan *dockerfile.Plan, opts ...Option) (*Builder, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if o.workDir == "" {
		return nil, errors.New("executor: a work directory is required")
	}
	if err := os.MkdirAll(o.workDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating work directory: %w", err)
	}
	if o.jobs < 1 {
		o.jobs = 1
	}
	if o.cacheDir == "" {
		o.cacheDir = filepath.Join(o.workDir, "cache")
	}
	if o.secretsDir == "" {
		o.secretsDir = o.workDir
	}
	b := &Builder{plan: plan, opts: o, results: map[*dockerfile.Stage]*stageFuture{}, images: map[string]*imageView{}}
	b.roots = &dirRoots{dir: rootsDir(o.workDir)}
	if o.layerStore != nil && o.sandbox != nil && o.sandbox.Mode() == sandbox.ModeChroot {
		overlay, err := newOverlayRoots(o.layerStore, filepath.Join(o.workDir, "overlay"), overlayExtract(o.log), b.roots, o.log)
		if err != nil {
			o.log.Infof("Stage roots are directories of their own: %v", err)
		} else {
			b.roots = overlay
		}
	}
	if o.cache != nil && o.cache.Store != nil {
		if o.singleSnapshot {
			o.log.Warn("Layer caching does not apply to --single-snapshot builds: every step runs")
		} else {
			b.cache = newLayerCache(*o.cache, o.log)
			b.headers = newCachedHeaders(b.cache)
		}
	}
	if o.sandbox != nil && o.sandbox.Mode() == sandbox.ModeInPlace {
		// One root, "/": stages take turns.
		b.opts.jobs = 1
		b.roots = newInPlaceRoots(o.workDir, o.stateDir, b.inPlaceProtected(), o.log)
	}
	for _, s := range plan.Stages {
		b.results[s] = &stageFuture{done: make(chan struct{})}
	}
	b.inImage = map[*dockerfile.Stage]bool{}
	for s := plan.Target; s != nil; s = s.BaseStage {
		b.inImage[s] = true
	}
	for _, s := range plan.Stages {
		for _, dep := range stageDeps(s) {
			if f, ok := b.results[dep]; ok {
				f.users++
			}
		}
	}
	return b, nil
}

// Build builds every stage of the plan and returns the target's image.
// Stages wait for the stages they depend on; independent stages run
// concurrently, at most jobs at a time.
//
// When Build returns, "/" is back to what the executor image shipped
// (in-place isolation); root filesystems on disk are being removed in the
// background, so that writing the image out need not wait: call Close once
// it is written.
func (b *Builder) Build(ctx context.Context) (img v1.Image, err error) {
	defer func() {
		if rerr := b.roots.Close(context.WithoutCancel(ctx)); rerr != nil && err == nil {
			err = rerr
		}
		b.cleaned = make(chan struct{})
		go func() {
			defer close(b.cleaned)
			b.close()
		}()
		if b.cache != nil {
			b.opts.log.Info(b.cache.summary())
		}
	}()
	g, ctx := errgroup.WithContext(ctx)
	slots := make(chan struct{}, b.opts.jobs)
	for _, s := range b.plan.Stages {
		f := b.results[s]
		f.base = b.startPull(ctx, s)
		g.Go(func() error {
			defer close(f.done)
			for _, dep := range stageDeps(s) {
				if _, err := b.wait(ctx, dep); err != nil {
					f.err = err
					return err
				}
			}
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				f.err = ctx.Err()
				return f.err
			}
			defer func() { <-slots }()
			f.res, f.err = b.buildStage(ctx, s)
			b.finished(s)
			return f.err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	res := b.results[b.plan.Target].res
	if err := b.checkLayerCount(res.layers); err != nil {
		return nil, err
	}
	return res.image, nil
}

// layerWarning is the layer count above which a build is warned: each
// layer costs every pull and every container start.
const layerWarning = 100

// checkLayerCount refuses an image with more layers than runtimes stack
// (overlayfs takes about 127 lower directories), unless allowed.
func (b *Builder) checkLayerCount(n int) error {
	if b.opts.maxLayers > 0 && n > b.opts.maxLayers {
		return fmt.Errorf("the image has %d layers, more than container runtimes can stack (%d): merge RUN instructions, use --single-snapshot, or raise --max-layers (0 for no limit) if your runtime takes more", n, b.opts.maxLayers)
	}
	if n > layerWarning {
		b.opts.log.Warnf("The image has %d layers: pulls and container starts slow down with each one; consider merging RUN instructions or --single-snapshot", n)
	}
	return nil
}

// stageDeps lists the stages s needs before it can start, once each.
func stageDeps(s *dockerfile.Stage) []*dockerfile.Stage {
	deps := append([]*dockerfile.Stage(nil), s.Deps...)
	if s.BaseStage != nil && !slices.Contains(deps, s.BaseStage) {
		deps = append(deps, s.BaseStage)
	}
	return deps
}

// finished releases the root filesystems nobody will read any more: those
// of s and of its dependencies once their last user is done. Their layers
// stay, so a late reader (an ONBUILD trigger's COPY --from) still works.
func (b *Builder) finished(s *dockerfile.Stage) {
	b.mu.Lock()
	defer b.mu.Unlock()
	release := func(f *stageFuture) {
		if f.users == 0 && f.res != nil && f.res.root != nil {
			f.res.root.Release()
		}
	}
	release(b.results[s])
	for _, dep := range stageDeps(s) {
		if f, ok := b.results[dep]; ok {
			f.users--
			release(f)
		}
	}
}

// wait returns the result of a stage once it is built.
func (b *Builder) wait(ctx context.Context, s *dockerfile.Stage) (*stageResult, error) {
	f, ok := b.results[s]
	if !ok {
		return nil, fmt.Errorf("stage %s is not part of the build plan", stageLabel(s))
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if f.err != nil {
		return nil, fmt.Errorf("stage %s failed", stageLabel(s))
	}
	return f.res, nil
}

// imageView is an image named by COPY --from or RUN --mount from=, pulled
// once per build however many stages name it.
type imageView struct {
	once   sync.Once
	lfs    *fsview.LayerFS
	digest v1.Hash
	err    error
}

// image returns an image named by COPY --from or RUN --mount from=.
// Concurrent stages wait for one pull; different images are pulled in
// parallel.
func (b *Builder) image(ctx context.Context, ref string) (*imageView, error) {
	b.mu.Lock()
	v, ok := b.images[ref]
	if !ok {
		v = &imageView{}
		b.images[ref] = v
	}
	b.mu.Unlock()
	v.once.Do(func() {
		img, err := b.pull(ctx, ref, "")
		if err != nil {
			v.err = err
			return
		}
		layers, err := img.Layers()
		if err == nil {
			v.digest, err = img.Digest()
		}
		if err != nil {
			v.err = fmt.Errorf("image %q: %w", ref, err)
			return
		}
		v.lfs = b.layerFS(layers)
	})
	return v, v.err
}

func (b *Builder) pull(ctx context.Context, ref, platform string) (v1.Image, error) {
	if b.opts.source == nil {
		return nil, fmt.Errorf("image %q: no registry access configured", ref)
	}
	p := b.opts.platform
	if platform != "" {
		pp, err := v1.ParsePlatform(platform)
		if err != nil {
			return nil, fmt.Errorf("invalid platform %q: %w", platform, err)
		}
		p = *pp
	}
	return b.opts.source.Pull(ctx, ref, p)
}

// Close waits for what the build left running: the removal of root
// filesystems and the writes to the layer cache. The layers of the image
// Build returned stay readable until the work directory is removed.
func (b *Builder) Close() {
	if b.cleaned != nil {
		<-b.cleaned
	}
	if b.cache != nil {
		b.cache.wait()
	}
}

func (b *Builder) close() {
	for _, v := range b.images {
		if v.lfs != nil {
			v.lfs.Close()
		}
	}
	for _, f := range b.results {
		if f.res != nil {
			f.res.close()
		}
	}
}

// NeedsRoot reports whether building plan materialises a root filesystem:
// a stage runs a command, or takes a single snapshot. (RUN instructions in
// a base image's ONBUILD triggers are only known once it is pulled.)
func NeedsRoot(plan *dockerfile.Plan, singleSnapshot bool) bool {
	for _, s := range plan.Stages {
		if stageRunsCommands(s) {
			return true
		}
	}
	return singleSnapshot
}

func stageRunsCommands(s *dockerfile.Stage) bool {
	for _, c := range s.Commands {
		if _, ok := c.(*instructions.RunCommand); ok {
			return true
		}
	}
	return false
}

// adoptRoot hands the root filesystem of the finished stage parent to the
// stage continuing from it, when that stage is the parent's last user: the
// tree (and its snapshot baseline) is exactly where the child starts, so
// nothing is extracted again. The parent's result keeps its layers.
func (b *Builder) adoptRoot(parent *dockerfile.Stage) *stageRoot {
	b.mu.Lock()
	defer b.mu.Unlock()
	f := b.results[parent]
	if f == nil || f.res == nil || f.res.root == nil || f.users != 1 || !f.res.root.Live() {
		return nil
	}
	r := f.res.root
	f.res.root = nil
	return r
}

// inPlaceProtected lists what in-place isolation must leave alone besides
// the fixed paths and mount points: kiln's work dir, the build context,
// the directory kiln started in and --ignore-path.
func (b *Builder) inPlaceProtected() []string {
	extra := []string{b.opts.workDir, b.opts.secretsDir, b.opts.cacheDir, b.opts.stateDir}
	if b.opts.context != nil {
		extra = append(extra, b.opts.context.Dir())
	}
	if wd, err := os.Getwd(); err == nil {
		extra = append(extra, wd)
	}
	return append(extra, b.opts.ignorePaths...)
}

func stageLabel(s *dockerfile.Stage) string {
	if s.Name != "" {
		return fmt.Sprintf("%q", s.Name)
	}
	return fmt.Sprintf("#%d", s.Index)
}
