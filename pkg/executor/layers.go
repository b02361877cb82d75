package executor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kiln-build/kiln/pkg/fsview"
	"github.com/kiln-build/kiln/pkg/layer"
)

// fs is the stage's current tree: on disk once materialised, else the view
// of its layers.
func (s *stageBuilder) fs() fsview.FS {
	if s.root != nil {
		return s.root.fs
	}
	return s.lfs
}

// newLayerWriter starts a layer with the build's compression and
// timestamps, and the stage's media types.
func (s *stageBuilder) newLayerWriter() (*layer.Writer, error) {
	opts := []layer.Option{
		layer.WithCompression(s.b.opts.compression, s.b.opts.level),
		layer.WithOCIMediaTypes(s.oci),
	}
	if s.b.opts.epoch != nil {
		opts = append(opts, layer.WithEpoch(*s.b.opts.epoch))
	}
	return layer.NewWriter(s.b.layersDir(), opts...)
}

// commitLayer adds a layer written by COPY, ADD, WORKDIR or VOLUME. When the
// stage's tree is on disk the layer is applied to it too. With
// --single-snapshot the layer only changes the tree: the stage's one
// snapshot at the end will contain it.
func (s *stageBuilder) commitLayer(ctx context.Context, l *layer.File, history string) error {
	if s.root == nil && s.b.opts.singleSnapshot {
		if _, err := s.materialize(ctx); err != nil {
			return err
		}
	}
	if s.root != nil {
		if err := s.applyLayer(ctx, s.root.dir, l); err != nil {
			return fmt.Errorf("applying layer to %q: %w", s.root.dir, err)
		}
		s.root.stale = true
	}
	if s.b.opts.singleSnapshot {
		s.addHistory(history, true)
		return l.Remove()
	}
	s.addLayer(l, history)
	return nil
}

// finishSnapshot takes the stage's one snapshot with --single-snapshot.
func (s *stageBuilder) finishSnapshot(ctx context.Context) error {
	if !s.b.opts.singleSnapshot || s.root == nil {
		return nil
	}
	return s.snapshot(ctx, s.root, "single snapshot of stage "+stageName(s.stage))
}

func (b *Builder) layersDir() string {
	d := filepath.Join(b.opts.workDir, "layers")
	os.MkdirAll(d, 0o700)
	return d
}
