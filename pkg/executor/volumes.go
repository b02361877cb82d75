package executor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"

	"github.com/kiln-build/kiln/pkg/fsview"
	"github.com/kiln-build/kiln/pkg/rootfs"
)

// saveVolumes keeps a copy of the declared volumes that exist in root and
// registers with rel their restoration after the RUN: like Docker's classic
// builder and buildah, changes a RUN makes inside a volume are discarded.
// The snapshot ignores volume paths.
func (s *stageBuilder) saveVolumes(ctx context.Context, root *stageRoot, rel *releaser) error {
	for _, p := range s.volumes {
		e, err := root.fs.Lstat(p)
		if err != nil || !e.IsDir() {
			continue // VOLUME created it unless a later step removed it
		}
		tmp, err := os.MkdirTemp(s.b.opts.workDir, "volume-")
		if err != nil {
			return err
		}
		rel.push(func() error {
			err := s.restoreVolume(ctx, root, p, e, tmp)
			os.RemoveAll(tmp)
			return err
		})
		if err := copyTree(ctx, root.fs, p, tmp, "/", s.b.copyOptions()...); err != nil {
			return fmt.Errorf("saving volume %q: %w", p, err)
		}
	}
	return nil
}

// volumePaths lists the declared volumes (the base image's and this
// stage's) as container paths resolved in fsys.
func (s *stageBuilder) volumePaths(fsys fsview.FS) []string {
	var out []string
	for v := range s.cfg.Config.Volumes {
		p, err := fsview.Resolve(fsys, v, true)
		if err != nil {
			p = fsview.Clean(v)
		}
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// restoreVolume replaces the content and metadata of the directory p in root
// with the saved copy.
func (s *stageBuilder) restoreVolume(ctx context.Context, root *stageRoot, p string, e *fsview.Entry, saved string) error {
	// The RUN may have replaced parts of p with symlinks: everything is
	// resolved again, inside the root.
	r, err := rootfs.OpenRoot(root.Dir())
	if err != nil {
		return err
	}
	defer r.Close()
	if dir, err := r.Open(p); err == nil {
		names, err := dir.Readdirnames(-1)
		dir.Close()
		if err != nil {
			return err
		}
		for _, n := range names {
			if err := r.RemoveAll(path.Join(p, n)); err != nil {
				return err
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if _, err := r.MkdirAll(p, 0o755, nil); err != nil {
		return err
	}
	savedFS, err := fsview.NewDirFS(saved)
	if err != nil {
		return err
	}
	if err := copyTree(ctx, savedFS, "/", root.Dir(), p, s.b.copyOptions()...); err != nil {
		return fmt.Errorf("restoring volume %q: %w", p, err)
	}
	if err := r.Lchown(p, e.UID, e.GID); err != nil {
		return err
	}
	if err := r.Chmod(p, e.Mode&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
		return err
	}
	return r.Chtimes(p, e.ModTime, e.ModTime)
}
