package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/cyphar/filepath-securejoin/pathrs-lite"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/pkg/fsview"
	"github.com/kiln-build/kiln/pkg/sandbox"
	"github.com/kiln-build/kiln/pkg/userdb"
)

// tailLines is how much of a failing command's output its error repeats.
const tailLines = 20

// run runs a RUN instruction in the stage's root filesystem and snapshots
// what it changed into a layer.
func (s *stageBuilder) run(ctx context.Context, orig, c *instructions.RunCommand) error {
	if s.b.opts.sandbox == nil {
		return errors.New("RUN needs an isolation mode (see --isolation)")
	}
	if sec := instructions.GetSecurity(c); sec == instructions.SecurityInsecure {
		return errors.New("RUN --security=insecure is not supported: kiln never runs build steps privileged")
	}
	network := instructions.GetNetwork(c)
	if err := checkEmulation(s.cfg.Architecture, binfmtDir); err != nil {
		return err
	}
	root, err := s.materialize(ctx)
	if err != nil {
		return err
	}
	args, scriptMounts, cleanupArgs, err := s.runArgs(c)
	if err != nil {
		return err
	}
	defer cleanupArgs()

	usr, err := userdb.LookupUser(root.fs, s.userSpec())
	if err != nil {
		return fmt.Errorf("USER %q: %w", s.cfg.Config.User, err)
	}
	env := runEnv(s.scope.RunEnv(), usr.Home)

	mounts, err := s.prepareMounts(ctx, orig, c, scriptMounts)
	if err != nil {
		return err
	}
	defer mounts.cleanup()
	env = append(env, mounts.env...)

	if root.stale && !s.b.opts.singleSnapshot {
		if err := root.snap.Baseline(ctx); err != nil {
			return fmt.Errorf("snapshot baseline: %w", err)
		}
		root.stale = false
	}
	// Created after the baseline: they belong to this RUN's layer.
	dir := s.workingDir()
	if err := s.ensureRunDirs(root, dir); err != nil {
		return err
	}
	emptyTargets := s.emptyMountTargets(root, mounts.sandbox)
	if err := mounts.placeInRoot(s, root); err != nil {
		return err
	}
	restoreVolumes, err := s.saveVolumes(ctx, root)
	if err != nil {
		return err
	}

	out := newTail(s.b.opts.runOutput, tailLines)
	spec := &sandbox.Spec{
		Rootfs: root.dir,
		Args:   args,
		Env:    env,
		Dir:    dir,
		UID:    uint32(usr.UID),
		GID:    uint32(usr.GID),
		Groups: supplementaryGroups(usr),
		Mounts: mounts.sandbox,
		Stdout: out,
		Stderr: out,
	}
	switch network {
	case instructions.NetworkNone:
		spec.Network = sandbox.NetworkNone
	case instructions.NetworkHost:
		spec.Network = sandbox.NetworkHost
	default:
		spec.Network = sandbox.NetworkDefault
	}
	if s.b.inPlace != nil {
		spec.Mounts = nil // placed in "/" by placeInRoot
	}
	runErr := s.b.opts.sandbox.Run(ctx, spec)
	if err := restoreVolumes(); err != nil && runErr == nil {
		runErr = err
	}
	if err := mounts.cleanup(); err != nil && runErr == nil {
		runErr = err
	}
	if runErr == nil {
		runErr = removeEmptyTargets(root, emptyTargets)
	}
	if runErr != nil {
		var exit *sandbox.ExitError
		if errors.As(runErr, &exit) {
			return fmt.Errorf("%s%s", exit.Error(), out.summary())
		}
		return runErr
	}
	if s.b.opts.singleSnapshot {
		s.addHistory(s.runHistory(c), true)
		return nil
	}
	return s.snapshot(ctx, root, s.runHistory(c))
}

// snapshot writes what changed in root since the baseline as a layer.
func (s *stageBuilder) snapshot(ctx context.Context, root *rootState, history string) error {
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
	return nil
}

// userSpec is the USER a RUN runs as ("root" when unset).
func (s *stageBuilder) userSpec() string {
	if u := s.cfg.Config.User; u != "" {
		return u
	}
	return "0"
}

// runArgs builds the command line, handling here-documents like BuildKit: a
// RUN that is a single here-document runs its content (through its shebang
// if it has one), other here-documents go to the shell with the command.
func (s *stageBuilder) runArgs(c *instructions.RunCommand) ([]string, []sandbox.Mount, func(), error) {
	noop := func() {}
	args := append([]string(nil), c.CmdLine...)
	if len(c.Files) > 0 {
		if len(args) != 1 || !c.PrependShell {
			return nil, nil, noop, fmt.Errorf("here-documents need the shell form of RUN")
		}
		if parser.MustParseHeredoc(args[0]) != nil {
			data := c.Files[0].Data
			if c.Files[0].Chomp {
				data = parser.ChompHeredocContent(data)
			}
			if strings.HasPrefix(data, "#!") {
				return s.scriptArgs(c.Files[0].Name, data)
			}
			args = []string{data}
		} else {
			full := args[0]
			for _, f := range c.Files {
				full += "\n" + f.Data + f.Name
			}
			args = []string{full}
		}
	}
	if c.PrependShell {
		return append(append([]string(nil), s.shell()...), strings.Join(args, " ")), nil, noop, nil
	}
	return args, nil, noop, nil
}

// scriptArgs runs a here-document with a shebang as an executable script,
// provided through a read-only mount at /dev/pipes/NAME as BuildKit does.
func (s *stageBuilder) scriptArgs(name, data string) ([]string, []sandbox.Mount, func(), error) {
	noop := func() {}
	f, err := os.CreateTemp(s.b.opts.workDir, "heredoc-")
	if err != nil {
		return nil, nil, noop, err
	}
	cleanup := func() { os.Remove(f.Name()) }
	_, err = io.WriteString(f, data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o755)
	}
	if err != nil {
		cleanup()
		return nil, nil, noop, err
	}
	if s.b.inPlace != nil {
		// "/" is the root and the work dir is protected: run it from there.
		return []string{f.Name()}, nil, cleanup, nil
	}
	target := path.Join("/dev/pipes", name)
	m := sandbox.Mount{Type: sandbox.MountBind, Source: f.Name(), Target: target, ReadOnly: true}
	return []string{target}, []sandbox.Mount{m}, cleanup, nil
}

// runHistory is the history entry of a RUN, like BuildKit's: the build
// arguments in scope are listed by name only (values may be secrets).
func (s *stageBuilder) runHistory(c *instructions.RunCommand) string {
	var names []string
	for _, kv := range s.scope.DeclaredArgs() {
		k, _, _ := strings.Cut(kv, "=")
		names = append(names, k)
	}
	text := "RUN " + strings.Join(s.withShell(c.ShellDependantCmdLine), " ")
	if len(names) > 0 {
		text = fmt.Sprintf("RUN |%d %s %s", len(names), strings.Join(names, " "), strings.TrimPrefix(text, "RUN "))
	}
	return text
}

// runEnv completes a RUN's environment like Docker: PATH and HOME when the
// image and the Dockerfile set none.
func runEnv(env []string, home string) []string {
	has := func(k string) bool {
		for _, kv := range env {
			if strings.HasPrefix(kv, k+"=") {
				return true
			}
		}
		return false
	}
	out := append([]string(nil), env...)
	if !has("PATH") {
		out = append(out, "PATH="+defaultPath)
	}
	if !has("HOME") {
		if home == "" {
			home = "/"
		}
		out = append(out, "HOME="+home)
	}
	return out
}

// runMountPoints are the directories a container runtime mounts on, which
// the reference builder leaves in images built from scratch.
var runMountPoints = []string{"/dev", "/proc", "/sys", "/etc"}

// ensureRunDirs creates the working directory of a RUN when the image
// lacks it, as container runtimes do, and the standard mount points.
func (s *stageBuilder) ensureRunDirs(root *rootState, dir string) error {
	for _, d := range append([]string{dir}, runMountPoints...) {
		if e, err := fsview.Stat(root.fs, d); err == nil && e.IsDir() {
			continue
		}
		if s.b.inPlace != nil && s.b.inPlace.protected(d) {
			continue
		}
		if err := pathrs.MkdirAll(root.dir, d, 0o755); err != nil {
			return fmt.Errorf("creating directory %q: %w", d, err)
		}
	}
	return nil
}

// emptyMountTargets lists the mount targets of a RUN that are empty
// directories in the root before it. The reference builder drops such a
// directory after the RUN, and so does kiln; a directory with content is
// always kept (buildah 1.28 deletes it too: kiln does not follow it there).
func (s *stageBuilder) emptyMountTargets(root *rootState, mounts []sandbox.Mount) []string {
	var out []string
	for _, m := range mounts {
		if m.Type == sandbox.MountSecret || strings.HasPrefix(m.Target, "/dev/") {
			continue
		}
		p, err := fsview.Resolve(root.fs, m.Target, true)
		if err != nil {
			continue
		}
		if e, err := root.fs.Lstat(p); err == nil && e.IsDir() {
			if ents, err := root.fs.ReadDir(p); err == nil && len(ents) == 0 {
				out = append(out, p)
			}
		}
	}
	return out
}

// removeEmptyTargets removes the mount targets that are still empty
// directories after the RUN.
func removeEmptyTargets(root *rootState, targets []string) error {
	for _, p := range targets {
		host, err := securejoin.SecureJoin(root.dir, p)
		if err != nil {
			return err
		}
		// Remove (not RemoveAll) fails on a directory the RUN filled.
		if err := os.Remove(host); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.ENOTEMPTY) && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("removing mount point %q: %w", p, err)
		}
	}
	return nil
}

// supplementaryGroups are the user's groups as initgroups sets them: the
// primary group, then the groups that list the user.
func supplementaryGroups(u *userdb.User) []uint32 {
	out := []uint32{uint32(u.GID)}
	for _, g := range u.Groups {
		if g != u.GID {
			out = append(out, uint32(g))
		}
	}
	return out
}
