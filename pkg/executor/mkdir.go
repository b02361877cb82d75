package executor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/kiln-build/kiln/pkg/fsview"
	"github.com/kiln-build/kiln/pkg/userdb"
)

// workdir sets the working directory and, like Docker, creates it when it
// does not exist, owned by the current USER.
func (s *stageBuilder) workdir(ctx context.Context, c *instructions.WorkdirCommand) error {
	wd := resolveWorkdir(s.cfg.Config.WorkingDir, c.Path)
	s.cfg.Config.WorkingDir = wd
	uid, gid := 0, 0
	if u := s.cfg.Config.User; u != "" {
		fsys, err := s.tree(ctx)
		if err != nil {
			return err
		}
		usr, err := userdb.LookupUser(fsys, u)
		if err != nil {
			return fmt.Errorf("creating working directory for USER %q: %w", u, err)
		}
		uid, gid = usr.UID, usr.GID
	}
	created, err := s.mkdirAll(ctx, []string{wd}, uid, gid, createdBy(c))
	if err != nil {
		return err
	}
	if !created {
		s.addHistory(createdBy(c), true)
	}
	return nil
}

// mkdirAll writes a layer creating the missing directories of dirs (mode
// 0755, owned by uid:gid) and reports whether there was anything to create.
// Symlinks on the way resolve inside the stage's tree.
func (s *stageBuilder) mkdirAll(ctx context.Context, dirs []string, uid, gid int, history string) (bool, error) {
	fsys, err := s.tree(ctx)
	if err != nil {
		return false, err
	}
	type dirEntry struct {
		entry   *fsview.Entry
		created bool
	}
	var todo []dirEntry
	seen := map[string]bool{}
	now := s.now()
	for _, d := range dirs {
		target, err := fsview.Resolve(fsys, d, true)
		if err != nil {
			return false, err
		}
		// Walk down from the root: existing parents are repeated in the
		// layer with their metadata, missing ones are created.
		p := "/"
		for _, c := range fsview.SplitPath(target) {
			p = path.Join(p, c)
			if seen[p] {
				continue
			}
			seen[p] = true
			e, err := fsys.Lstat(p)
			switch {
			case err == nil && e.IsDir():
				todo = append(todo, dirEntry{entry: e})
			case err == nil:
				return false, fmt.Errorf("cannot create directory %q: %q exists and is not a directory", d, p)
			case errors.Is(err, fs.ErrNotExist):
				todo = append(todo, dirEntry{created: true, entry: &fsview.Entry{
					Path: p, Mode: fs.ModeDir | 0o755, UID: uid, GID: gid, ModTime: now.Truncate(time.Second),
				}})
			default:
				return false, err
			}
		}
	}
	anyCreated := false
	for _, d := range todo {
		anyCreated = anyCreated || d.created
	}
	if !anyCreated {
		return false, nil
	}
	w, err := s.newLayerWriter()
	if err != nil {
		return false, err
	}
	for _, d := range todo {
		if err := w.WriteHeader(d.entry.Header()); err != nil {
			w.Abort()
			return false, err
		}
	}
	l, err := w.Commit()
	if err != nil {
		return false, err
	}
	return true, s.commitLayer(ctx, l, history)
}
