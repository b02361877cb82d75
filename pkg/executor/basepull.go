package executor

import (
	"context"
	"fmt"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/pkg/dockerfile"
	"github.com/kiln-build/kiln/pkg/fsview"
)

// basePull is a stage's base image, resolved as the build starts rather
// than when the stages it waits for are done: a final stage's base is
// then ready (and, for a stage that only copies, its tree read) by the
// time the stage it copies from finishes.
type basePull struct {
	done   chan struct{}
	img    v1.Image
	cfg    *configFile
	layers []v1.Layer
	lfs    *fsview.LayerFS
	took   time.Duration
	err    error
}

// startPull resolves the base of st in the background; nil for a stage
// that starts from scratch or from another stage.
func (b *Builder) startPull(ctx context.Context, st *dockerfile.Stage) *basePull {
	if st.BaseStage != nil || strings.EqualFold(st.Base, "scratch") {
		return nil
	}
	p := &basePull{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		start := time.Now()
		p.err = p.pull(ctx, b, st)
		p.took = time.Since(start)
		if p.err == nil && b.indexesEarly(st) {
			// Errors come back to the COPY that reads the view.
			p.lfs.Index(ctx)
		}
	}()
	return p
}

func (p *basePull) pull(ctx context.Context, b *Builder, st *dockerfile.Stage) error {
	img, err := b.pull(ctx, st.Base, st.Platform)
	if err != nil {
		return err
	}
	if p.cfg, err = readConfig(img); err != nil {
		return fmt.Errorf("image %q: %w", st.Base, err)
	}
	if p.layers, err = img.Layers(); err != nil {
		return fmt.Errorf("image %q: %w", st.Base, err)
	}
	p.img, p.lfs = img, b.layerFS(p.layers)
	return nil
}

// wait returns the pulled base once it is there.
func (p *basePull) wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// indexesEarly reports whether st's base tree is worth reading while the
// stage waits: it copies files and runs nothing (a stage that runs
// unpacks its root instead), and its COPY steps will run rather than
// come from the layer cache, which would need no tree at all.
func (b *Builder) indexesEarly(st *dockerfile.Stage) bool {
	if stageRunsCommands(st) || b.opts.singleSnapshot || (b.cache != nil && b.cache.opts.CopyLayers) {
		return false
	}
	return copiesBeforeRun(st.Commands) // with no RUN: whether it copies at all
}
