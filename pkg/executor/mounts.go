package executor

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/kiln-build/kiln/pkg/dockerfile"
	"github.com/kiln-build/kiln/pkg/fsview"
	"github.com/kiln-build/kiln/pkg/sandbox"
)

// runMounts are the mounts of one RUN and what to undo afterwards.
type runMounts struct {
	sandbox []sandbox.Mount
	env     []string // secrets exposed as environment variables
	temps   []string
	unlock  []func()
	placed  []func() error // undo files placed in "/" in-place
	done    bool
}

func (m *runMounts) cleanup() error {
	if m.done {
		return nil
	}
	m.done = true
	var errs []error
	for i := len(m.placed) - 1; i >= 0; i-- {
		errs = append(errs, m.placed[i]())
	}
	for _, u := range m.unlock {
		u()
	}
	for _, t := range m.temps {
		if err := os.RemoveAll(t); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// prepareMounts turns the RUN's --mount flags into sandbox mounts.
func (s *stageBuilder) prepareMounts(ctx context.Context, orig, c *instructions.RunCommand, extra []sandbox.Mount) (*runMounts, error) {
	m := &runMounts{sandbox: append([]sandbox.Mount(nil), extra...)}
	sources := s.stage.MountFrom[orig]
	s.runMountTargets = s.runMountTargets[:0]
	for i, mnt := range instructions.GetMounts(c) {
		target := mnt.Target
		if !path.IsAbs(target) {
			target = path.Join(s.workingDir(), target)
		}
		target = path.Clean(target)
		var src dockerfile.Source
		if i < len(sources) {
			src = sources[i]
		}
		if src.Stage == nil && src.Image == "" && mnt.From != "" {
			// An ONBUILD trigger's mount: resolved now.
			var err error
			if src, err = s.b.plan.ResolveSource(s.stage, mnt.From); err != nil {
				m.cleanup()
				return nil, err
			}
		}
		sm, err := s.mount(ctx, m, mnt, src, target)
		if err != nil {
			m.cleanup()
			return nil, fmt.Errorf("--mount=type=%s,target=%s: %w", mnt.Type, mnt.Target, err)
		}
		if sm != nil {
			m.sandbox = append(m.sandbox, *sm)
		}
	}
	return m, nil
}

func (s *stageBuilder) mount(ctx context.Context, m *runMounts, mnt *instructions.Mount, src dockerfile.Source, target string) (*sandbox.Mount, error) {
	switch mnt.Type {
	case instructions.MountTypeBind:
		host, err := s.bindSource(ctx, m, src, mnt.Source, !mnt.ReadOnly)
		if err != nil {
			return nil, err
		}
		return &sandbox.Mount{Type: sandbox.MountBind, Source: host, Target: target, ReadOnly: mnt.ReadOnly}, nil
	case instructions.MountTypeCache:
		dir, err := s.b.cacheDir(ctx, m, mnt, target)
		if err != nil {
			return nil, err
		}
		return &sandbox.Mount{Type: sandbox.MountCache, Source: dir, Target: target, ReadOnly: mnt.ReadOnly}, nil
	case instructions.MountTypeTmpfs:
		return &sandbox.Mount{Type: sandbox.MountTmpfs, Target: target, Size: mnt.SizeLimit}, nil
	case instructions.MountTypeSecret:
		return s.b.secretMount(m, mnt)
	case instructions.MountTypeSSH:
		return nil, errors.New("SSH agent forwarding is not supported: pass the key as a secret (--secret) and mount it with type=secret")
	}
	return nil, fmt.Errorf("unknown mount type %q", mnt.Type)
}

// bindSource returns the host path to bind for a source path of the build
// context, a stage or an image. Writable binds get a private copy, whose
// changes are discarded like BuildKit's.
func (s *stageBuilder) bindSource(ctx context.Context, m *runMounts, src dockerfile.Source, p string, writable bool) (string, error) {
	var fsys fsview.FS
	switch {
	case src.Stage != nil:
		res, err := s.b.wait(ctx, src.Stage)
		if err != nil {
			return "", err
		}
		fsys = res.fs()
	case src.Image != "":
		l, err := s.b.imageFS(ctx, src.Image)
		if err != nil {
			return "", err
		}
		fsys = l
	default:
		if s.b.opts.contextDir == "" {
			return "", errors.New("no build context to mount")
		}
		if !writable {
			host, err := securejoin.SecureJoin(s.b.opts.contextDir, p)
			if err != nil {
				return "", err
			}
			if _, err := os.Lstat(host); err != nil {
				return "", fmt.Errorf("source %q: %w", p, err)
			}
			return host, nil
		}
		fsys = s.b.opts.context
	}
	if d, ok := fsys.(*fsview.DirFS); ok && !writable {
		resolved, err := fsview.Resolve(d, p, true)
		if err != nil {
			return "", err
		}
		if _, err := d.Lstat(resolved); err != nil {
			return "", fmt.Errorf("source %q: %w", p, err)
		}
		return d.HostPath(resolved), nil
	}
	// Not on disk (a layer view), or writable: a private copy.
	tmp, err := os.MkdirTemp(s.b.opts.workDir, "mount-")
	if err != nil {
		return "", err
	}
	m.temps = append(m.temps, tmp)
	e, err := fsview.Stat(fsys, p)
	if err != nil {
		return "", fmt.Errorf("source %q: %w", p, err)
	}
	if !e.IsDir() {
		if err := copyTree(ctx, fsys, p, tmp, "/"+path.Base(p)); err != nil {
			return "", err
		}
		return filepath.Join(tmp, path.Base(p)), nil
	}
	if err := copyTree(ctx, fsys, p, tmp, "/"); err != nil {
		return "", err
	}
	return tmp, nil
}

// cacheDir returns the directory of a cache mount, creating it on first use.
// Caches live in the cache dir (WithCacheDir): kiln's own directory keeps
// them for the next build in the same container or on the same volume.
func (b *Builder) cacheDir(ctx context.Context, m *runMounts, mnt *instructions.Mount, target string) (string, error) {
	id := mnt.CacheID
	if id == "" {
		id = target
	}
	key := fmt.Sprintf("%x", sha256.Sum256([]byte(id)))[:32]
	dir := filepath.Join(b.opts.cacheDir, key)
	switch mnt.CacheSharing {
	case instructions.MountSharingLocked:
		unlock := b.lockCache(key)
		m.unlock = append(m.unlock, unlock)
	case instructions.MountSharingPrivate:
		if !b.claimCache(key) {
			tmp, err := os.MkdirTemp(b.opts.workDir, "cache-private-")
			if err != nil {
				return "", err
			}
			m.temps = append(m.temps, tmp)
			return tmp, nil
		}
		m.unlock = append(m.unlock, func() { b.releaseCache(key) })
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		mode := os.FileMode(0o755)
		if mnt.Mode != nil {
			mode = os.FileMode(*mnt.Mode) & os.ModePerm
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", err
		}
		if err := os.Chmod(dir, mode); err != nil {
			return "", err
		}
		uid, gid := -1, -1
		if mnt.UID != nil {
			uid = int(*mnt.UID)
		}
		if mnt.GID != nil {
			gid = int(*mnt.GID)
		}
		if uid >= 0 || gid >= 0 {
			if err := os.Lchown(dir, uid, gid); err != nil {
				return "", err
			}
		}
	}
	return dir, nil
}

// secretMount provides a --secret to a RUN, as a read-only file or as an
// environment variable (env=NAME).
func (b *Builder) secretMount(m *runMounts, mnt *instructions.Mount) (*sandbox.Mount, error) {
	id := mnt.CacheID
	if id == "" {
		id = path.Base(mnt.Target)
	}
	if id == "" || id == "." || id == "/" {
		return nil, errors.New("a secret mount needs an id")
	}
	value, ok := b.opts.secrets[id]
	if !ok {
		if mnt.Required {
			return nil, fmt.Errorf("secret %q is required but was not given (--secret id=%s,src=FILE)", id, id)
		}
		return nil, nil
	}
	if mnt.Env != nil {
		name := *mnt.Env
		if name == "" {
			name = id
		}
		m.env = append(m.env, name+"="+string(value))
		if mnt.Target == "" {
			return nil, nil
		}
	}
	target := mnt.Target
	if target == "" {
		target = "/run/secrets/" + id
	}
	dir, err := os.MkdirTemp(b.opts.workDir, "secret-")
	if err != nil {
		return nil, err
	}
	m.temps = append(m.temps, dir)
	file := filepath.Join(dir, "secret")
	mode := os.FileMode(0o400)
	if mnt.Mode != nil {
		mode = os.FileMode(*mnt.Mode) & os.ModePerm
	}
	if err := os.WriteFile(file, value, mode); err != nil {
		return nil, err
	}
	if err := os.Chmod(file, mode); err != nil {
		return nil, err
	}
	uid, gid := 0, 0
	if mnt.UID != nil {
		uid = int(*mnt.UID)
	}
	if mnt.GID != nil {
		gid = int(*mnt.GID)
	}
	if err := os.Lchown(file, uid, gid); err != nil && !b.opts.rootless {
		return nil, err
	}
	return &sandbox.Mount{Type: sandbox.MountSecret, Source: file, Target: path.Clean(target), ReadOnly: true}, nil
}

// placeInRoot provides the RUN's mounts with in-place isolation, where
// nothing can be mounted. Each target is set up for the RUN only, hidden
// from the snapshot, and put back afterwards: what the image has there is
// moved aside; a secret or a bind gets a copy of its source (writes to it
// are discarded, and a read-only bind is not enforced); a cache directory is
// moved in and back out, keeping what the RUN wrote; a tmpfs is an empty
// directory.
func (m *runMounts) placeInRoot(s *stageBuilder, root *rootState) error {
	if root.inPlace == nil {
		return nil
	}
	mounts := append([]sandbox.Mount(nil), m.sandbox...)
	// Outer targets first, so that a nested one lands inside.
	sort.SliceStable(mounts, func(i, j int) bool {
		return strings.Count(mounts[i].Target, "/") < strings.Count(mounts[j].Target, "/")
	})
	for _, mt := range mounts {
		placed, undo, err := placeMount(root.dir, s.b.opts.workDir, mt)
		if err != nil {
			return fmt.Errorf("providing --mount=type=%s at %q without mounting: %w", mt.Type, mt.Target, err)
		}
		m.placed = append(m.placed, undo)
		s.runMountTargets = append(s.runMountTargets, placed)
	}
	return nil
}

// placeMount sets up one mount target inside root and returns the container
// path it used (symlinks on the way resolved) and the function that undoes
// it.
func placeMount(root, workDir string, mt sandbox.Mount) (string, func() error, error) {
	dir, created, err := mkdirsRecorded(root, path.Dir(mt.Target))
	if err != nil {
		return "", nil, err
	}
	host := filepath.Join(dir, path.Base(mt.Target))
	rel, err := filepath.Rel(root, host)
	if err != nil {
		return "", nil, err
	}
	placed := fsview.Clean(rel)
	parent := dir
	if len(created) > 0 {
		parent = filepath.Dir(created[0])
	}
	st, err := os.Stat(parent)
	if err != nil {
		return "", nil, err
	}
	mtime := st.ModTime()
	aside := ""
	if _, err := os.Lstat(host); err == nil {
		if aside, err = os.MkdirTemp(workDir, "aside-"); err != nil {
			return "", nil, err
		}
		aside = filepath.Join(aside, "content")
		if err := moveTree(host, aside); err != nil {
			return "", nil, err
		}
	}
	isCache := mt.Type == sandbox.MountCache
	undo := func() error {
		var errs []error
		if isCache {
			errs = append(errs, moveTree(host, mt.Source))
		} else if err := os.RemoveAll(host); err != nil {
			errs = append(errs, err)
		}
		if aside != "" {
			errs = append(errs, moveTree(aside, host), os.Remove(filepath.Dir(aside)))
		}
		for i := len(created) - 1; i >= 0; i-- {
			errs = append(errs, os.Remove(created[i]))
		}
		errs = append(errs, os.Chtimes(parent, mtime, mtime))
		return errors.Join(errs...)
	}
	switch mt.Type {
	case sandbox.MountSecret, sandbox.MountBind:
		err = copyHost(mt.Source, host)
	case sandbox.MountCache:
		err = moveTree(mt.Source, host)
	case sandbox.MountTmpfs:
		if err = os.Mkdir(host, 0o1777); err == nil {
			err = os.Chmod(host, 0o1777) // past the umask
		}
	default:
		err = fmt.Errorf("unknown mount type %q", mt.Type)
	}
	if err != nil {
		undo()
		return "", nil, err
	}
	return placed, undo, nil
}

// moveTree moves a file or directory, copying it when src and dst are on
// different filesystems (a cache on a volume, say).
func moveTree(src, dst string) error {
	err := os.Rename(src, dst)
	if !errors.Is(err, syscall.EXDEV) {
		return err
	}
	if err := copyHost(src, dst); err != nil {
		return err
	}
	return os.RemoveAll(src)
}

// copyHost copies the file or directory src to the new path dst, keeping
// modes, owners, times and links.
func copyHost(src, dst string) error {
	st, err := os.Lstat(src)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := os.WriteFile(dst, data, st.Mode().Perm()); err != nil {
			return err
		}
		uid, gid := ownerOf(st)
		if err := os.Chmod(dst, st.Mode().Perm()); err != nil {
			return err
		}
		return os.Lchown(dst, uid, gid)
	}
	if err := os.Mkdir(dst, 0o700); err != nil {
		return err
	}
	srcFS, err := fsview.NewDirFS(src)
	if err != nil {
		return err
	}
	if err := copyTree(context.Background(), srcFS, "/", dst, "/"); err != nil {
		return err
	}
	uid, gid := ownerOf(st)
	if err := os.Lchown(dst, uid, gid); err != nil {
		return err
	}
	if err := os.Chmod(dst, st.Mode()&(os.ModePerm|os.ModeSetgid|os.ModeSticky)); err != nil {
		return err
	}
	return os.Chtimes(dst, st.ModTime(), st.ModTime())
}

// mkdirsRecorded creates the missing directories of p inside root and
// returns its host path and the host paths it created, in order.
func mkdirsRecorded(root, p string) (string, []string, error) {
	host, err := securejoin.SecureJoin(root, p)
	if err != nil {
		return "", nil, err
	}
	var missing []string
	for d := host; d != root && d != "/"; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			break
		}
		missing = append([]string{d}, missing...)
	}
	for _, d := range missing {
		if err := os.Mkdir(d, 0o755); err != nil {
			return "", nil, err
		}
	}
	return host, missing, nil
}

// workingDir is the stage's WORKDIR, "/" when unset.
func (s *stageBuilder) workingDir() string {
	if wd := s.cfg.Config.WorkingDir; wd != "" {
		return wd
	}
	return "/"
}

func ownerOf(fi os.FileInfo) (int, int) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), int(st.Gid)
	}
	return 0, 0
}
