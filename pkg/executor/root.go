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
	// Live reports whether the tree is still on disk, for the readers of a
	// finished stage (COPY --from, RUN --mount from=).
	Live() bool
	// Release gives the tree up; it is removed, or left for the next
	// stage to reset.
	Release()
}

// rootAllocator hands out the root filesystems of stages.
type rootAllocator interface {
	// New returns an empty root for the stage called name.
	New(ctx context.Context, name string) (rootFS, error)
	// Close undoes what the allocator changed outside its roots.
	Close(ctx context.Context) error
}

// stageRoot is a stage's materialised tree: the root, a view of it, the
// snapshot baseline, and how many of the stage's layers it holds.
type stageRoot struct {
	rootFS
	fs   *fsview.DirFS
	snap *snapshot.Snapshotter
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
	if s.root != nil {
		return s.root, s.syncRoot(ctx)
	}
	start := time.Now()
	r, err := s.b.roots.New(ctx, stageName(s.stage))
	if err != nil {
		return nil, err
	}
	root := &stageRoot{rootFS: r}
	s.root = root
	if root.fs, err = fsview.NewDirFS(r.Dir()); err != nil {
		return nil, err
	}
	root.ignore = s.ignored
	root.snap = snapshot.New(r.Dir(), snapshot.WithIgnore(func(p string) bool { return root.ignore(p) }))
	if err := s.syncRoot(ctx); err != nil {
		return nil, err
	}
	if err := root.snap.Baseline(ctx); err != nil {
		return nil, fmt.Errorf("snapshot baseline of %q: %w", r.Dir(), err)
	}
	root.stale = false
	s.log.Infof("Unpacked %d layers into %s in %s", root.applied, r.Dir(), roundDuration(time.Since(start)))
	return root, nil
}

// syncRoot extracts the stage's layers the root does not hold yet.
func (s *stageBuilder) syncRoot(ctx context.Context) error {
	layers, err := s.allLayers()
	if err != nil {
		return err
	}
	for _, l := range layers[s.root.applied:] {
		if err := s.applyLayer(ctx, l); err != nil {
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

// applyLayer extracts one layer onto the stage's root.
func (s *stageBuilder) applyLayer(ctx context.Context, l v1.Layer) error {
	name := layerName(l)
	rc, err := l.Uncompressed()
	if err != nil {
		return fmt.Errorf("layer %s: %w", name, err)
	}
	defer rc.Close()
	opts := append(s.b.copyOptions(), rootfs.WithLayerName(name), rootfs.WithLogger(s.log), rootfs.WithIgnore(s.root.Protected))
	err = rootfs.Apply(ctx, s.root.Dir(), rc, opts...)
	if err != nil {
		return fmt.Errorf("applying layer to %q: %w", s.root.Dir(), err)
	}
	return nil
}

// copyOptions are the extraction options of every tree kiln writes on
// disk: in a user namespace with one id mapped, owners cannot be kept.
func (b *Builder) copyOptions() []rootfs.Option {
	return []rootfs.Option{rootfs.WithChownErrorsIgnored(b.opts.rootless), rootfs.WithLogger(b.opts.log)}
}

// ignored reports whether a container path must never be snapshotted: what
// the root protects, --ignore-path entries, declared volumes (RUN changes
// there are discarded, as the reference builder does) and the mount
// points of the RUN in progress.
func (s *stageBuilder) ignored(p string) bool {
	if s.root != nil && s.root.Protected(p) {
		return true
	}
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

func (a *dirRoots) New(_ context.Context, name string) (rootFS, error) {
	if err := os.MkdirAll(a.dir, 0o700); err != nil {
		return nil, err
	}
	d, err := os.MkdirTemp(a.dir, "stage-"+name+"-")
	if err != nil {
		return nil, fmt.Errorf("creating root filesystem directory: %w", err)
	}
	// The root directory itself is "/" of the image: 0755 like Docker's.
	if err := os.Chmod(d, 0o755); err != nil {
		return nil, err
	}
	return &dirRoot{dir: d}, nil
}

func (a *dirRoots) Close(context.Context) error { return nil }

// dirRoot is a root filesystem in a directory of its own. The sandbox
// mounts what a RUN needs.
type dirRoot struct {
	dir  string
	mu   sync.Mutex
	gone bool
}

func (r *dirRoot) Dir() string           { return r.dir }
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
