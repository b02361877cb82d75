package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/pkg/layer"
	"github.com/kiln-build/kiln/pkg/layerstore"
	"github.com/kiln-build/kiln/pkg/rootfs"
	"github.com/kiln-build/kiln/pkg/sandbox"
	"github.com/kiln-build/kiln/pkg/snapshot"
)

// overlayRoots makes stage roots that are overlays: the base layers,
// extracted once each into a store that builds on the machine share, are
// the lower layers, and a fresh upper directory takes what the stage
// changes — which is then the diff, with no walk of the tree. Layers are
// extracted in parallel, and a base a build extracted before costs
// nothing to the next. It needs a mount namespace of kiln's own (chroot
// isolation: sandbox.EnterMountNamespace), so that no mount outlives kiln.
type overlayRoots struct {
	fallback rootAllocator // when an overlay cannot be made
	store    *layerstore.Store
	dir      string // uppers, work dirs and mount points
	log      logrus.FieldLogger
	extract  func(extra ...rootfs.Option) layerstore.Extract
}

// newOverlayRoots returns overlay roots if this machine can mount them on
// dir; the reason it cannot otherwise.
func newOverlayRoots(store *layerstore.Store, dir string, extract func(extra ...rootfs.Option) layerstore.Extract, fallback rootAllocator, log logrus.FieldLogger) (*overlayRoots, error) {
	a := &overlayRoots{store: store, dir: dir, log: log, extract: extract, fallback: fallback}
	if err := a.probe(); err != nil {
		return nil, err
	}
	return a, nil
}

// probe mounts a small overlay of two directories.
func (a *overlayRoots) probe() error {
	if err := os.MkdirAll(a.dir, 0o700); err != nil {
		return err
	}
	d, err := os.MkdirTemp(a.dir, "probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(d)
	for _, sub := range []string{"lower", "upper", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(d, sub), 0o755); err != nil {
			return err
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", filepath.Join(d, "lower"), filepath.Join(d, "upper"), filepath.Join(d, "work"))
	if err := unix.Mount("overlay", filepath.Join(d, "merged"), "overlay", 0, opts); err != nil {
		return fmt.Errorf("mounting an overlay in %q: %w", a.dir, err)
	}
	return unix.Unmount(filepath.Join(d, "merged"), unix.MNT_DETACH)
}

func (a *overlayRoots) Close(ctx context.Context) error {
	a.store.Trim()
	return a.fallback.Close(ctx)
}
func (a *overlayRoots) OneAtATime() bool { return false }

// New mounts an overlay of layers, every one of which it takes. A stage
// whose layers cannot make one (a hard link to a file of a lower layer, too
// many layers for the mount's options) gets a root of its own instead.
func (a *overlayRoots) New(ctx context.Context, name string, layers []v1.Layer) (rootFS, int, error) {
	r, n, err := a.newOverlay(ctx, name, layers)
	if err != nil && ctx.Err() == nil {
		a.log.Warnf("Stage %s: %v; extracting its layers into a directory of its own instead", name, err)
		return a.fallback.New(ctx, name, layers)
	}
	return r, n, err
}

func (a *overlayRoots) newOverlay(ctx context.Context, name string, layers []v1.Layer) (rootFS, int, error) {
	held := make([]*layerstore.Held, len(layers))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.NumCPU())
	for i, l := range layers {
		g.Go(func() error {
			tap, tapped := tapOptions(l)
			h, err := a.store.Get(gctx, l, a.extract(tap...))
			if err != nil {
				return fmt.Errorf("layer %s: %w", layerName(l), err)
			}
			if h.Extracted {
				tapped()
			}
			held[i] = h
			return nil
		})
	}
	r := &overlayRoot{a: a, held: held}
	err := g.Wait()
	extracted := 0
	for _, h := range held {
		if h != nil && h.Extracted {
			extracted++
		}
	}
	if err == nil {
		r.base, err = os.MkdirTemp(a.dir, "stage-"+name+"-")
	}
	if err == nil {
		r.merged = filepath.Join(r.base, "root")
		err = os.Mkdir(r.merged, 0o755)
	}
	if err == nil {
		for i := len(held) - 1; i >= 0; i-- {
			r.lowers = append(r.lowers, held[i].Dir)
		}
		err = r.mount()
	}
	if err != nil {
		r.releaseAll()
		return nil, 0, err
	}
	a.log.Infof("Stage %s: root is an overlay of %d layers: %d extracted now, %d already in the layer store", name, len(layers), extracted, len(layers)-extracted)
	return r, len(layers), nil
}

// overlayRoot is an overlay mounted at merged: lowers, top first, then
// each upper the stage filled before the current one.
type overlayRoot struct {
	a      *overlayRoots
	held   []*layerstore.Held
	base   string // the root's private directory
	merged string
	lowers []string
	upper  string
	uppers int

	mu   sync.Mutex
	gone bool
}

func (r *overlayRoot) Dir() string           { return r.merged }
func (r *overlayRoot) Protected(string) bool { return false }
func (r *overlayRoot) PlacesMounts() bool    { return false }

func (r *overlayRoot) Provide(m sandbox.Mount) (*sandbox.Mount, string, func() error, error) {
	return &m, m.Target, func() error { return nil }, nil
}

func (r *overlayRoot) Live() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.gone
}

func (r *overlayRoot) Release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gone {
		return
	}
	r.gone = true
	r.releaseAll()
}

// releaseAll unmounts, lets go of the layers and removes the uppers.
func (r *overlayRoot) releaseAll() {
	if r.upper != "" {
		unix.Unmount(r.merged, unix.MNT_DETACH)
	}
	for _, h := range r.held {
		if h != nil {
			h.Release()
		}
	}
	if r.base != "" {
		os.RemoveAll(r.base)
	}
}

// mount mounts the overlay with a new, empty upper directory.
func (r *overlayRoot) mount() error {
	r.uppers++
	layerDir := filepath.Join(r.base, fmt.Sprint(r.uppers))
	upper, work := filepath.Join(layerDir, "fs"), filepath.Join(layerDir, "work")
	for _, d := range []string{layerDir, upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	// Without redirects and metacopy, the upper holds whole files and
	// directories: what a layer needs.
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s,redirect_dir=off,metacopy=off,index=off", strings.Join(r.lowers, ":"), upper, work)
	if len(opts) > os.Getpagesize()-1 {
		return fmt.Errorf("an overlay of %d layers has options longer than a page", len(r.lowers))
	}
	if err := unix.Mount("overlay", r.merged, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mounting the overlay root %q: %w", r.merged, err)
	}
	r.upper = upper
	return nil
}

// Differ reads the changes from the upper directory; its baseline starts a
// new one, the filled one becoming the top lower layer.
func (r *overlayRoot) Differ(ignore func(string) bool) differ {
	return &overlayDiffer{r: r, ignore: ignore}
}

type overlayDiffer struct {
	r      *overlayRoot
	ignore func(string) bool
}

func (d *overlayDiffer) Baseline(context.Context) error {
	r := d.r
	if empty, err := isEmptyDir(r.upper); err != nil || empty {
		return err
	}
	if err := unix.Unmount(r.merged, 0); err != nil {
		return fmt.Errorf("unmounting the overlay root %q: %w", r.merged, err)
	}
	// The upper, and the work directory overlay needs beside it, stay.
	r.lowers = append([]string{r.upper}, r.lowers...)
	return r.mount()
}

// Diff writes what the upper holds; the state after it is the next
// baseline, as with a walk.
func (d *overlayDiffer) Diff(ctx context.Context, tw layer.TarWriter) (snapshot.Stats, error) {
	stats, err := snapshot.FromOverlayUpper(ctx, d.r.upper, tw, snapshot.WithIgnore(d.ignore))
	if err != nil {
		return stats, err
	}
	return stats, d.Baseline(ctx)
}

func isEmptyDir(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return false, err
}

// overlayExtract extracts a layer into a directory of the store, in the
// form overlay reads as a lower layer.
func overlayExtract(log logrus.FieldLogger) func(extra ...rootfs.Option) layerstore.Extract {
	return func(extra ...rootfs.Option) layerstore.Extract {
		return func(ctx context.Context, dir string, r io.Reader) error {
			opts := append([]rootfs.Option{rootfs.WithOverlayWhiteouts(), rootfs.WithLogger(log)}, extra...)
			return rootfs.Apply(ctx, dir, r, opts...)
		}
	}
}
