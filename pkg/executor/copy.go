package executor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/kiln-build/kiln/pkg/copier"
	"github.com/kiln-build/kiln/pkg/dockerfile"
	"github.com/kiln-build/kiln/pkg/fsview"
	"github.com/kiln-build/kiln/pkg/userdb"
)

// copySpec is what COPY and ADD have in common, expanded.
type copySpec struct {
	cmd      instructions.Command
	add      bool
	from     string
	sources  []string
	contents []instructions.SourceContent
	dest     string
	chown    string
	chmod    string
	link     bool
	parents  bool
	exclude  []string
	checksum string
}

func copyFromCommand(c *instructions.CopyCommand) copySpec {
	return copySpec{cmd: c, from: c.From, sources: c.SourcePaths, contents: c.SourceContents, dest: c.DestPath,
		chown: c.Chown, chmod: c.Chmod, link: c.Link, parents: c.Parents, exclude: c.ExcludePatterns}
}

func addFromCommand(c *instructions.AddCommand) copySpec {
	return copySpec{cmd: c, add: true, sources: c.SourcePaths, contents: c.SourceContents, dest: c.DestPath,
		chown: c.Chown, chmod: c.Chmod, link: c.Link, exclude: c.ExcludePatterns, checksum: c.Checksum}
}

// copy runs COPY or ADD: the copier writes the new layer from the source
// tree and the stage's current tree view; nothing is extracted.
func (s *stageBuilder) copy(ctx context.Context, orig instructions.Command, spec copySpec) error {
	src, fromContext, err := s.copySource(ctx, orig, spec)
	if err != nil {
		return err
	}
	dst, err := s.tree(ctx)
	if err != nil {
		return err
	}
	req := &copier.Request{
		Sources:     spec.sources,
		Dest:        spec.dest,
		Workdir:     s.cfg.Config.WorkingDir,
		Src:         src,
		Dst:         dst,
		Chmod:       spec.chmod,
		Exclude:     spec.exclude,
		Parents:     spec.parents,
		Link:        spec.link,
		Add:         spec.add,
		Checksum:    spec.checksum,
		FromContext: fromContext,
		HTTPClient:  s.b.opts.httpClient,
	}
	for _, c := range spec.contents {
		req.Heredocs = append(req.Heredocs, copier.Inline{Name: c.Path, Data: []byte(c.Data)})
	}
	if spec.chown != "" {
		uid, gid, err := userdb.LookupOwner(dst, spec.chown)
		if err != nil {
			return fmt.Errorf("--chown=%s: %w", spec.chown, err)
		}
		req.Chown = &copier.Owner{UID: uid, GID: gid}
	}
	w, err := s.newLayerWriter()
	if err != nil {
		return err
	}
	res, err := copier.Copy(ctx, req, w)
	if err != nil {
		w.Abort()
		if fromContext {
			return explainExcluded(err, src, spec.sources)
		}
		return err
	}
	l, err := w.Commit()
	if err != nil {
		return err
	}
	s.log.Debugf("copied %d files (%d bytes) to %s", res.Files, res.Bytes, strings.Join(res.Paths, ", "))
	return s.commitLayer(ctx, l, createdBy(spec.cmd))
}

// excluder is implemented by a build context with a .dockerignore.
type excluder interface {
	Excluded(name string) bool
}

// explainExcluded adds to a "not found" error that the source exists but
// .dockerignore excludes it.
func explainExcluded(err error, src fsview.FS, sources []string) error {
	ex, ok := src.(excluder)
	if !ok || !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, s := range sources {
		if ex.Excluded(fsview.Clean(s)) {
			return fmt.Errorf("%w (%q is excluded by .dockerignore)", err, s)
		}
	}
	return err
}

// copySource returns the tree COPY reads from: the build context, or the
// stage or image named by --from.
func (s *stageBuilder) copySource(ctx context.Context, orig instructions.Command, spec copySpec) (fsview.FS, bool, error) {
	if spec.from == "" {
		if s.b.opts.context == nil {
			return nil, false, fmt.Errorf("no build context")
		}
		return s.b.opts.context.FS(), true, nil
	}
	source, err := s.copyFromSource(orig, spec)
	if err != nil {
		return nil, false, err
	}
	if source.Stage != nil {
		res, err := s.b.wait(ctx, source.Stage)
		if err != nil {
			return nil, false, err
		}
		return res.fs(), false, nil
	}
	v, err := s.b.image(ctx, source.Image)
	if err != nil {
		return nil, false, err
	}
	return v.lfs, false, nil
}

// copyFromSource is the stage or image a COPY --from names.
func (s *stageBuilder) copyFromSource(orig instructions.Command, spec copySpec) (dockerfile.Source, error) {
	c, ok := orig.(*instructions.CopyCommand)
	if !ok {
		return dockerfile.Source{}, fmt.Errorf("--from is only valid for COPY")
	}
	if source, ok := s.stage.CopyFrom[c]; ok {
		return source, nil
	}
	// ONBUILD triggers are resolved now: their --from was not planned.
	return s.b.plan.ResolveSource(s.stage, spec.from)
}
