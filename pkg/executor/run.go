package executor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/kiln-build/kiln/pkg/fsview"
	"github.com/kiln-build/kiln/pkg/rootfs"
	"github.com/kiln-build/kiln/pkg/sandbox"
)

// tailLines is how much of a failing command's output its error repeats.
const tailLines = 20

// run runs a RUN instruction in the stage's root filesystem and snapshots
// what it changed into a layer.
func (s *stageBuilder) run(ctx context.Context, orig, c *instructions.RunCommand) error {
	if s.b.opts.sandbox == nil {
		return errors.New("RUN needs an isolation mode (see --isolation)")
	}
	if err := checkEmulation(s.cfg.Architecture, binfmtDir); err != nil {
		return err
	}
	// Planned first: bad flags fail before anything is extracted.
	plan, err := s.planRun(orig, c)
	if err != nil {
		return err
	}
	root, err := s.materialize(ctx)
	if err != nil {
		return err
	}
	if err := plan.identify(root.fs); err != nil {
		return err
	}
	if root.stale && !s.b.opts.singleSnapshot {
		if err := root.snap.Baseline(ctx); err != nil {
			return fmt.Errorf("snapshot baseline: %w", err)
		}
		root.stale = false
	}
	if err := s.execute(ctx, root, plan); err != nil {
		return err
	}
	if s.b.opts.singleSnapshot {
		s.addHistory(plan.History, true)
		return nil
	}
	return s.snapshot(ctx, root, plan.History)
}

// execute runs a planned RUN in root: it acquires what the RUN needs
// (directories, the script, mounts, saved volumes), runs the command and
// releases everything in reverse order, whatever happened.
func (s *stageBuilder) execute(ctx context.Context, root *stageRoot, plan *runPlan) (err error) {
	var rel releaser
	defer func() {
		if rerr := rel.release(); rerr != nil && err == nil {
			err = rerr
		}
	}()
	s.runMountTargets = s.runMountTargets[:0]
	s.volumes = s.volumePaths(root.fs)
	// Created after the baseline: they belong to this RUN's layer.
	if err := s.ensureRunDirs(root, plan.Dir); err != nil {
		return err
	}
	args := plan.Args
	var held []heldMount
	if plan.Script != nil {
		h, err := s.scriptMount(root, plan.Script, &rel)
		if err != nil {
			return err
		}
		held = append(held, *h)
		args = append([]string{h.target}, args[1:]...)
	}
	mounts, err := s.acquireMounts(ctx, root, plan.Mounts, &rel)
	if err != nil {
		return err
	}
	held = append(held, mounts...)
	if err := s.saveVolumes(ctx, root, &rel); err != nil {
		return err
	}

	out := newTail(s.b.opts.runOutput, tailLines)
	spec := &sandbox.Spec{
		Rootfs:  root.Dir(),
		Args:    args,
		Env:     plan.Env,
		Dir:     plan.Dir,
		UID:     plan.UID,
		GID:     plan.GID,
		Groups:  plan.Groups,
		Network: plan.Network,
		Stdout:  out,
		Stderr:  out,
	}
	for _, h := range held {
		if h.mount != nil {
			spec.Mounts = append(spec.Mounts, *h.mount)
		}
		spec.Env = append(spec.Env, h.env...)
	}
	runErr := s.b.opts.sandbox.Run(ctx, spec)
	if err := rel.release(); err != nil && runErr == nil {
		runErr = err
	}
	var exit *sandbox.ExitError
	if errors.As(runErr, &exit) {
		return &runError{exit: exit, tail: out.summary()}
	}
	return runErr
}

// runError is a RUN command that failed; it unwraps to the
// *sandbox.ExitError, whose code kiln exits with.
type runError struct {
	exit *sandbox.ExitError
	tail string
}

func (e *runError) Error() string { return e.exit.Error() + e.tail }
func (e *runError) Unwrap() error { return e.exit }

// scriptMount writes a here-document script to a file and has the root
// provide it, read-only, at /dev/pipes/NAME.
func (s *stageBuilder) scriptMount(root *stageRoot, sc *script, rel *releaser) (*heldMount, error) {
	dir, err := os.MkdirTemp(s.b.opts.workDir, "heredoc-")
	if err != nil {
		return nil, err
	}
	rel.push(func() error { return os.RemoveAll(dir) })
	file := filepath.Join(dir, "script")
	if err := os.WriteFile(file, []byte(sc.Data), 0o755); err != nil {
		return nil, err
	}
	if err := os.Chmod(file, 0o755); err != nil {
		return nil, err
	}
	m := sandbox.Mount{Type: sandbox.MountBind, Source: file, Target: path.Join(scriptDir, sc.Name), ReadOnly: true}
	return s.provide(root, m, nil, rel)
}

// snapshot writes what changed in root since the baseline as a layer.
func (s *stageBuilder) snapshot(ctx context.Context, root *stageRoot, history string) error {
	start := time.Now()
	w, err := s.newLayerWriter()
	if err != nil {
		return err
	}
	stats, err := root.snap.Diff(ctx, w)
	if err != nil {
		w.Abort()
		return fmt.Errorf("snapshot: %w", err)
	}
	if w.Entries() == 0 {
		w.Abort()
		s.log.Debug("No filesystem changes: no layer")
		s.addHistory(history, true)
		return nil
	}
	l, err := w.Commit()
	if err != nil {
		return err
	}
	size, _ := l.Size()
	s.log.Debugf("Snapshot: %s, layer %s (%d bytes) in %s", stats, layerName(l), size, roundDuration(time.Since(start)))
	s.addLayer(l, history)
	root.applied++ // the layer is what the root already holds
	return nil
}

// runMountPoints are the directories a container runtime mounts on, which
// the reference builder leaves in images built from scratch.
var runMountPoints = []string{"/dev", "/proc", "/sys", "/etc"}

// ensureRunDirs creates the working directory of a RUN when the image
// lacks it, as container runtimes do, and the standard mount points.
func (s *stageBuilder) ensureRunDirs(root *stageRoot, dir string) error {
	r, err := rootfs.OpenRoot(root.Dir())
	if err != nil {
		return err
	}
	defer r.Close()
	for _, d := range append([]string{dir}, runMountPoints...) {
		if e, err := fsview.Stat(root.fs, d); err == nil && e.IsDir() {
			continue
		}
		if root.Protected(d) {
			continue
		}
		if _, err := r.MkdirAll(d, 0o755, nil); err != nil {
			return err
		}
	}
	return nil
}
