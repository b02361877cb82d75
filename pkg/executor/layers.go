package executor

import (
	"context"
	"os"
	"path/filepath"

	"github.com/kiln-build/kiln/pkg/fsview"
	"github.com/kiln-build/kiln/pkg/layer"
)

// tree is the stage's current tree: on disk once materialised (brought up
// to date with the stage's layers first), else the view of its layers.
func (s *stageBuilder) tree(ctx context.Context) (fsview.FS, error) {
	if err := s.awaitRoot(); err != nil {
		return nil, err
	}
	if s.root == nil {
		return s.lfs, nil
	}
	if err := s.syncRoot(ctx); err != nil {
		return nil, err
	}
	return s.root.fs, nil
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

// commitLayer adds a layer written by COPY, ADD, WORKDIR or VOLUME. A
// materialised root receives it only when a later step needs the tree on
// disk (see syncRoot). With --single-snapshot the layer only changes the
// tree: the stage's one snapshot at the end will contain it.
func (s *stageBuilder) commitLayer(ctx context.Context, l *layer.File, history string) error {
	if s.b.opts.singleSnapshot {
		if _, err := s.materialize(ctx); err != nil {
			return err
		}
		if err := s.applyLayer(ctx, s.root, l); err != nil {
			return err
		}
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
	s.volumes = s.volumePaths(s.root.fs)
	return s.snapshot(ctx, s.root, "single snapshot of stage "+stageName(s.stage))
}

func (b *Builder) layersDir() string {
	d := filepath.Join(b.opts.workDir, "layers")
	os.MkdirAll(d, 0o700)
	return d
}
