package executor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/pkg/fsview"
	"github.com/kiln-build/kiln/pkg/layer"
	"github.com/kiln-build/kiln/pkg/progress"
	"github.com/kiln-build/kiln/pkg/rootfs"
	"github.com/kiln-build/kiln/pkg/sandbox"
	"github.com/kiln-build/kiln/pkg/snapshot"
)

// rootFS is where a stage's root filesystem lives on disk: a directory of
// its own (dirRoot), or "/" of the container kiln runs in (inPlaceRoot).
// Everything a RUN does goes through it, so the RUN path reads the same in
// every isolation mode.
type rootFS interface {
	// Dir is the host path of the root.
	Dir() string
	// Protected reports whether a container path belongs to the machine
	// rather than to the image: it is never extracted to, removed or
	// snapshotted.
	Protected(p string) bool
	// Provide makes m available at its target for one RUN and returns
	// what the sandbox must mount (nil when the root placed it itself), the
	// container path the RUN finds it at, and how to take it back.
	Provide(m sandbox.Mount) (*sandbox.Mount, string, func() error, error)
	// PlacesMounts reports whether Provide places files instead of having
	// the sandbox mount them: a cache is then moved in and out, so one RUN
	// at a time may use it.
	PlacesMounts() bool
	// Differ returns what finds the changes made in the root since its
	// last baseline, ignoring the container paths ignore names.
	Differ(ignore func(p string) bool) differ
	// Live reports whether the tree is still on disk, for the readers of a
	// finished stage (COPY --from, RUN --mount from=).
	Live() bool
	// Release gives the tree up; it is removed, or left for the next
	// stage to reset.
	Release()
}

// differ finds what changed in a root: Baseline marks the state changes
// are counted from, Diff writes them as layer entries.
type differ interface {
	Baseline(ctx context.Context) error
	Diff(ctx context.Context, tw layer.TarWriter) (snapshot.Stats, error)
}

// rootAllocator hands out the root filesystems of stages.
type rootAllocator interface {
	// New returns a root for the stage called name holding the first n of
	// layers (those it could take without extracting them onto it, 0 for
	// an empty root); the caller extracts the others.
	New(ctx context.Context, name string, layers []v1.Layer) (root rootFS, n int, err error)
	// Close undoes what the allocator changed outside its roots.
	Close(ctx context.Context) error
	// OneAtATime reports whether its roots share one place (in-place:
	// "/"), so that a root may only be made when its stage needs it.
	OneAtATime() bool
}

// stageRoot is a stage's materialised tree: the root, a view of it, the
// snapshot baseline, and how many of the stage's layers it holds.
type stageRoot struct {
	rootFS
	fs   *fsview.DirFS
	snap differ
	// ignore is the snapshot filter of the stage using the root now (a
	// stage continuing from another one takes its root over).
	ignore  func(p string) bool
	applied int  // layers of the stage's chain extracted onto the root
	stale   bool // changed outside a snapshot: baseline before the next RUN
}

// materialize puts the stage's current tree on disk and takes the snapshot
// baseline. A materialised root is brought up to date with the layers
// added since (COPY, WORKDIR) before it is used.
func (s *stageBuilder) materialize(ctx context.Context) (*stageRoot, error) {
	if err := s.awaitRoot(); err != nil {
		return nil, err
	}
	if s.root != nil {
		return s.root, s.syncRoot(ctx)
	}
	layers, err := s.allLayers()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if s.root, err = s.newStageRoot(ctx, layers); err != nil {
		return nil, err
	}
	s.log.Infof("Unpacked %d layers into %s in %s", s.root.applied, s.root.Dir(), roundDuration(time.Since(start)))
	return s.root, nil
}

// newStageRoot allocates a root, extracts layers onto it and takes the
// snapshot baseline. It reads nothing of s that changes while a stage runs,
// so that it may run beside the stage's first steps (see prefetchRoot).
func (s *stageBuilder) newStageRoot(ctx context.Context, layers []v1.Layer) (*stageRoot, error) {
	r, held, err := s.b.roots.New(ctx, stageName(s.stage), layers)
	if err != nil {
		return nil, err
	}
	root := &stageRoot{rootFS: r, ignore: s.ignored, applied: held}
	if root.fs, err = fsview.NewDirFS(r.Dir()); err != nil {
		r.Release()
		return nil, err
	}
	root.snap = r.Differ(func(p string) bool { return r.Protected(p) || root.ignore(p) })
	for _, l := range layers[held:] {
		if err := s.applyLayer(ctx, root, l); err != nil {
			r.Release()
			return nil, err
		}
		root.applied++
	}
	if err := root.snap.Baseline(ctx); err != nil {
		r.Release()
		return nil, fmt.Errorf("snapshot baseline of %q: %w", r.Dir(), err)
	}
	return root, nil
}

// prefetchRoot starts materialising the stage's base in the background, at
// FROM, when the stage will need its root: the layers are pulled and
// unpacked while the first steps run and other stages build, in one pass
// (a COPY before the first RUN then reads the tree on disk instead of
// decompressing the layers a second time for their headers).
func (s *stageBuilder) prefetchRoot(ctx context.Context, layers []v1.Layer) {
	done := make(chan struct{})
	s.pendingRoot = done
	start := time.Now()
	go func() {
		defer close(done)
		s.prefetched, s.prefetchErr = s.newStageRoot(ctx, layers)
		if s.prefetchErr == nil {
			var size int64
			for _, l := range layers {
				if n, err := l.Size(); err == nil {
					size += n
				}
			}
			s.log.Infof("FROM %s: pulled and unpacked %d layers (%s) in %s", s.stage.Base, len(layers),
				progress.Size(size), roundDuration(time.Since(start)))
		}
	}()
}

// awaitRoot takes over the root prefetchRoot made, once it is ready.
func (s *stageBuilder) awaitRoot() error {
	if s.pendingRoot == nil {
		return nil
	}
	<-s.pendingRoot
	s.pendingRoot = nil
	if s.prefetchErr != nil {
		return s.prefetchErr
	}
	s.root, s.prefetched = s.prefetched, nil
	return nil
}

// syncRoot extracts the stage's layers the root does not hold yet.
func (s *stageBuilder) syncRoot(ctx context.Context) error {
	layers, err := s.allLayers()
	if err != nil {
		return err
	}
	for _, l := range layers[s.root.applied:] {
		if err := s.applyLayer(ctx, s.root, l); err != nil {
			return err
		}
		s.root.applied++
		s.root.stale = true
	}
	return nil
}

// allLayers lists the stage's layers: the base image's, then its own.
func (s *stageBuilder) allLayers() ([]v1.Layer, error) {
	base, err := s.base.Layers()
	if err != nil {
		return nil, err
	}
	return append(append([]v1.Layer(nil), base...), s.layers...), nil
}

// applyLayer extracts one layer onto root.
func (s *stageBuilder) applyLayer(ctx context.Context, root *stageRoot, l v1.Layer) error {
	name := layerName(l)
	// Decompressed ahead of extraction, on a core of its own.
	rc, err := layer.Uncompressed(l)
	if err != nil {
		return fmt.Errorf("layer %s: %w", name, err)
	}
	defer rc.Close()
	tap, tapped := tapOptions(l)
	opts := append(s.b.copyOptions(), rootfs.WithLayerName(name), rootfs.WithLogger(s.log), rootfs.WithIgnore(root.Protected))
	err = rootfs.Apply(ctx, root.Dir(), rc, append(opts, tap...)...)
	if err != nil {
		return fmt.Errorf("applying layer to %q: %w", root.Dir(), err)
	}
	tapped()
	return nil
}

// copyOptions are the extraction options of every tree kiln writes on
// disk: in a user namespace with one id mapped, owners cannot be kept.
func (b *Builder) copyOptions() []rootfs.Option {
	return []rootfs.Option{rootfs.WithChownErrorsIgnored(b.opts.rootless), rootfs.WithLogger(b.opts.log)}
}

// ignored reports whether a container path must never be snapshotted
// (besides what the root protects): --ignore-path entries, declared volumes
// (RUN changes there are discarded, as the reference builder does) and the
// mount points of the RUN in progress.
func (s *stageBuilder) ignored(p string) bool {
	for _, ig := range s.b.opts.ignorePaths {
		if within(p, ig) {
			return true
		}
	}
	for _, v := range s.volumes {
		if within(p, v) {
			return true
		}
	}
	for _, m := range s.runMountTargets {
		if within(p, m) {
			return true
		}
	}
	return false
}

// within reports whether p is dir or below it (both clean and absolute).
func within(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}

func layerName(l v1.Layer) string {
	if d, err := l.Digest(); err == nil {
		return d.String()
	}
	return "layer"
}

// dirRoots allocates roots as directories under the work dir, one per
// stage, for isolation modes that pivot into them (chroot, rootless).
type dirRoots struct {
	dir string
}

func (a *dirRoots) New(_ context.Context, name string, _ []v1.Layer) (rootFS, int, error) {
	if err := os.MkdirAll(a.dir, 0o700); err != nil {
		return nil, 0, err
	}
	d, err := os.MkdirTemp(a.dir, "stage-"+name+"-")
	if err != nil {
		return nil, 0, fmt.Errorf("creating root filesystem directory: %w", err)
	}
	// The root directory itself is "/" of the image: 0755 like Docker's.
	if err := os.Chmod(d, 0o755); err != nil {
		return nil, 0, err
	}
	return &dirRoot{dir: d}, 0, nil
}

func (a *dirRoots) Close(context.Context) error { return nil }
func (a *dirRoots) OneAtATime() bool            { return false }

// dirRoot is a root filesystem in a directory of its own. The sandbox
// mounts what a RUN needs.
type dirRoot struct {
	dir  string
	mu   sync.Mutex
	gone bool
}

func (r *dirRoot) Dir() string { return r.dir }

// Differ compares file metadata with a walk of the whole tree.
func (r *dirRoot) Differ(ignore func(string) bool) differ {
	return snapshot.New(r.dir, snapshot.WithIgnore(ignore))
}

func (r *dirRoot) Protected(string) bool { return false }
func (r *dirRoot) PlacesMounts() bool    { return false }

func (r *dirRoot) Provide(m sandbox.Mount) (*sandbox.Mount, string, func() error, error) {
	return &m, m.Target, func() error { return nil }, nil
}

func (r *dirRoot) Live() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.gone
}

func (r *dirRoot) Release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gone {
		return
	}
	r.gone = true
	// Whatever cannot be removed now goes with the work dir at the end.
	os.RemoveAll(r.dir)
}

// rootsDir is where dirRoots keeps stage roots.
func rootsDir(workDir string) string { return filepath.Join(workDir, "roots") }
