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
	"github.com/kiln-build/kiln/pkg/snapshot"
)

// rootState is a stage's root filesystem on disk: a directory under the work
// dir, or "/" itself with in-place isolation.
type rootState struct {
	dir   string
	fs    *fsview.DirFS
	snap  *snapshot.Snapshotter
	stale bool // changed outside a snapshot (COPY applied): baseline before the next RUN

	inPlace *inPlaceRoot // set when the root is "/"
	gen     int          // in-place generation this root belongs to
	mu      sync.Mutex
	gone    bool
}

// kept reports whether the tree is still on disk for COPY --from and
// RUN --mount of later stages. An in-place root is replaced by the next
// stage that needs one.
func (r *rootState) kept() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gone {
		return false
	}
	return r.inPlace == nil || r.inPlace.generation() == r.gen
}

// release removes the root from disk (in-place roots are reset by the
// in-place owner instead).
func (r *rootState) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gone || r.inPlace != nil {
		return
	}
	r.gone = true
	// Whatever cannot be removed now goes with the work dir at the end.
	os.RemoveAll(r.dir)
}

// materialize puts the stage's current tree on disk, once, and takes the
// snapshot baseline.
func (s *stageBuilder) materialize(ctx context.Context) (*rootState, error) {
	if s.root != nil {
		return s.root, nil
	}
	start := time.Now()
	var dir string
	r := &rootState{}
	if ip := s.b.inPlace; ip != nil {
		gen, err := ip.acquire(ctx)
		if err != nil {
			return nil, err
		}
		dir, r.inPlace, r.gen = "/", ip, gen
	} else {
		d, err := os.MkdirTemp(s.b.rootsDir(), "stage-"+stageName(s.stage)+"-")
		if err != nil {
			return nil, fmt.Errorf("creating root filesystem directory: %w", err)
		}
		// The root directory itself is "/" of the image: 0755 like Docker's.
		if err := os.Chmod(d, 0o755); err != nil {
			return nil, err
		}
		dir = d
	}
	r.dir = dir
	layers, err := s.allLayers()
	if err != nil {
		return nil, err
	}
	for _, l := range layers {
		if err := s.applyLayer(ctx, dir, l); err != nil {
			return nil, err
		}
	}
	if r.fs, err = fsview.NewDirFS(dir); err != nil {
		return nil, err
	}
	r.snap = snapshot.New(dir, snapshot.WithIgnore(s.ignored))
	if err := r.snap.Baseline(ctx); err != nil {
		return nil, fmt.Errorf("snapshot baseline of %q: %w", dir, err)
	}
	s.root = r
	s.log.Infof("Unpacked %d layers into %s in %s", len(layers), dir, roundDuration(time.Since(start)))
	return r, nil
}

// allLayers lists the stage's layers: the base image's, then its own.
func (s *stageBuilder) allLayers() ([]v1.Layer, error) {
	base, err := s.base.Layers()
	if err != nil {
		return nil, err
	}
	return append(append([]v1.Layer(nil), base...), s.layers...), nil
}

// applyLayer extracts one layer onto dir.
func (s *stageBuilder) applyLayer(ctx context.Context, dir string, l v1.Layer) error {
	name := layerName(l)
	rc, err := l.Uncompressed()
	if err != nil {
		return fmt.Errorf("layer %s: %w", name, err)
	}
	defer rc.Close()
	opts := []rootfs.Option{rootfs.WithLayerName(name), rootfs.WithLogger(s.log),
		rootfs.WithChownErrorsIgnored(s.b.opts.rootless)}
	if s.b.inPlace != nil {
		opts = append(opts, rootfs.WithIgnore(s.b.inPlace.protected))
	}
	return rootfs.Apply(ctx, dir, rc, opts...)
}

// ignored reports whether a container path must never be snapshotted:
// --ignore-path entries, kiln's own paths in-place, declared volumes (RUN
// changes there are discarded, as the reference builder does) and the
// mount points of the RUN in progress.
func (s *stageBuilder) ignored(p string) bool {
	if s.b.inPlace != nil && s.b.inPlace.protected(p) {
		return true
	}
	for _, ig := range s.b.opts.ignorePaths {
		if within(p, ig) {
			return true
		}
	}
	for _, v := range s.volumePaths() {
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

func (b *Builder) rootsDir() string {
	d := filepath.Join(b.opts.workDir, "roots")
	os.MkdirAll(d, 0o700)
	return d
}
