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

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/pkg/fsview"
	"github.com/kiln-build/kiln/pkg/rootfs"
	"github.com/kiln-build/kiln/pkg/sandbox"
	"github.com/kiln-build/kiln/pkg/workdir"
)

// releaser gives back what a RUN acquired, last acquired first, on every
// exit path (BuildKit's mounts with a release function are the model).
type releaser []func() error

func (r *releaser) push(f func() error) { *r = append(*r, f) }

// release runs the release functions in reverse order, once each.
func (r *releaser) release() error {
	var errs []error
	for i := len(*r) - 1; i >= 0; i-- {
		errs = append(errs, (*r)[i]())
	}
	*r = nil
	return errors.Join(errs...)
}

// heldMount is one RUN mount, acquired: what the sandbox mounts (nil when
// the root placed it itself), where the RUN finds it, and the environment
// it adds (a secret as a variable).
type heldMount struct {
	mount  *sandbox.Mount
	target string
	env    []string
}

// acquireMounts acquires the RUN's mounts in order (outer targets first, so
// that a nested one lands inside), registering each release with rel.
func (s *stageBuilder) acquireMounts(ctx context.Context, root *stageRoot, specs []mountSpec, rel *releaser) ([]heldMount, error) {
	specs = append([]mountSpec(nil), specs...)
	sort.SliceStable(specs, func(i, j int) bool {
		return strings.Count(specs[i].Target, "/") < strings.Count(specs[j].Target, "/")
	})
	var out []heldMount
	for _, spec := range specs {
		h, err := s.acquireMount(ctx, root, spec, rel)
		if err != nil {
			return nil, fmt.Errorf("--mount=type=%s,target=%s: %w", spec.Type, spec.Mount.Target, err)
		}
		if h != nil {
			out = append(out, *h)
		}
	}
	return out, nil
}

// acquireMount prepares the source of one mount on the host and has the
// root provide it at its target.
func (s *stageBuilder) acquireMount(ctx context.Context, root *stageRoot, spec mountSpec, rel *releaser) (*heldMount, error) {
	var m sandbox.Mount
	var env []string
	switch spec.Type {
	case instructions.MountTypeBind:
		host, err := s.bindSource(ctx, spec, rel)
		if err != nil {
			return nil, err
		}
		m = sandbox.Mount{Type: sandbox.MountBind, Source: host, Target: spec.Target, ReadOnly: spec.ReadOnly}
	case instructions.MountTypeCache:
		dir, err := s.b.cacheMount(ctx, spec, !root.PlacesMounts(), rel)
		if err != nil {
			return nil, err
		}
		m = sandbox.Mount{Type: sandbox.MountCache, Source: dir, Target: spec.Target, ReadOnly: spec.ReadOnly}
	case instructions.MountTypeTmpfs:
		m = sandbox.Mount{Type: sandbox.MountTmpfs, Target: spec.Target, Size: spec.SizeLimit}
	case instructions.MountTypeSSH:
		sm, senv, err := s.b.sshMount(spec, rel)
		if err != nil || sm == nil {
			return nil, err
		}
		m, env = *sm, senv
	case instructions.MountTypeSecret:
		sm, senv, err := s.b.secretMount(spec, rel)
		if err != nil || sm == nil {
			if len(senv) > 0 {
				return &heldMount{env: senv}, err
			}
			return nil, err
		}
		m, env = *sm, senv
	default:
		return nil, fmt.Errorf("unknown mount type %q", spec.Type)
	}
	if m.Type != sandbox.MountSecret && spec.Type != instructions.MountTypeSSH {
		s.removeIfEmptyAfter(root, m.Target, rel)
	}
	return s.provide(root, m, env, rel)
}

// provide has the root make m available at its target for the RUN.
func (s *stageBuilder) provide(root *stageRoot, m sandbox.Mount, env []string, rel *releaser) (*heldMount, error) {
	mounted, target, undo, err := root.Provide(m)
	if err != nil {
		return nil, err
	}
	rel.push(undo)
	if mounted == nil {
		// Placed as files: the snapshot must not see them.
		s.runMountTargets = append(s.runMountTargets, target)
	}
	return &heldMount{mount: mounted, target: target, env: env}, nil
}

// removeIfEmptyAfter arranges for a mount target that is an empty directory
// in the root before the RUN to be removed after it, as the reference
// builder does. A directory with content is always kept (buildah 1.28
// deletes it too: kiln does not follow it there).
func (s *stageBuilder) removeIfEmptyAfter(root *stageRoot, target string, rel *releaser) {
	if strings.HasPrefix(target, "/dev/") {
		return
	}
	p, err := fsview.Resolve(root.fs, target, true)
	if err != nil {
		return
	}
	e, err := root.fs.Lstat(p)
	if err != nil || !e.IsDir() {
		return
	}
	if ents, err := root.fs.ReadDir(p); err != nil || len(ents) > 0 {
		return
	}
	rel.push(func() error {
		r, err := rootfs.OpenRoot(root.Dir())
		if err != nil {
			return err
		}
		defer r.Close()
		// Remove (not RemoveAll) fails on a directory the RUN filled.
		if err := r.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) && !isNotEmpty(err) {
			return fmt.Errorf("removing mount point %q: %w", p, err)
		}
		return nil
	})
}

// bindSource returns the host path to bind for a source path of the build
// context, a stage or an image. Writable binds get a private copy, whose
// changes are discarded like BuildKit's; so does a read-only bind of a
// context that .dockerignore filters, so that excluded files stay unseen.
func (s *stageBuilder) bindSource(ctx context.Context, spec mountSpec, rel *releaser) (string, error) {
	p := spec.Source
	writable := !spec.ReadOnly
	var fsys fsview.FS
	switch src := spec.From; {
	case src.Stage != nil:
		res, err := s.b.wait(ctx, src.Stage)
		if err != nil {
			return "", err
		}
		fsys = res.fs()
	case src.Image != "":
		v, err := s.b.image(ctx, src.Image)
		if err != nil {
			return "", err
		}
		fsys = v.lfs
	default:
		if s.b.opts.context == nil {
			return "", errors.New("no build context to mount")
		}
		fsys = s.b.opts.context.FS()
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
	// Not a plain directory on disk (a layer view, a filtered context), or
	// writable: a private copy.
	tmp, err := os.MkdirTemp(s.b.opts.workDir, "mount-")
	if err != nil {
		return "", err
	}
	rel.push(func() error { return os.RemoveAll(tmp) })
	e, err := fsview.Stat(fsys, p)
	if err != nil {
		return "", fmt.Errorf("source %q: %w", p, err)
	}
	if !e.IsDir() {
		if err := copyTree(ctx, fsys, p, tmp, "/"+path.Base(p), s.b.copyOptions()...); err != nil {
			return "", err
		}
		return filepath.Join(tmp, path.Base(p)), nil
	}
	if err := copyTree(ctx, fsys, p, tmp, "/", s.b.copyOptions()...); err != nil {
		return "", err
	}
	return tmp, nil
}

// cacheMount returns the directory of a cache mount, creating it on first
// use. Caches live in the cache dir (WithCacheDir): kiln's own directory
// keeps them for the next build in the same container or on the same
// volume, which builds may share. sharing=locked (and any cache that the
// root moves in and out rather than mounting, exclusive when not
// mountable) holds a lock across processes for the RUN; sharing=private
// takes the cache only when nobody holds it, else a fresh directory.
func (b *Builder) cacheMount(ctx context.Context, spec mountSpec, mountable bool, rel *releaser) (string, error) {
	id := spec.CacheID
	if id == "" {
		id = spec.Target
	}
	key := fmt.Sprintf("%x", sha256.Sum256([]byte(id)))[:32]
	if err := os.MkdirAll(b.opts.cacheDir, 0o700); err != nil {
		return "", err
	}
	dir := filepath.Join(b.opts.cacheDir, key)
	lockPath := dir + ".lock"
	switch {
	case spec.CacheSharing == instructions.MountSharingPrivate:
		unlock, ok, err := workdir.TryLock(lockPath)
		if err != nil {
			return "", err
		}
		if !ok {
			tmp, err := os.MkdirTemp(b.opts.workDir, "cache-private-")
			if err != nil {
				return "", err
			}
			rel.push(func() error { return os.RemoveAll(tmp) })
			return tmp, nil
		}
		rel.push(unlock)
	case spec.CacheSharing == instructions.MountSharingLocked || !mountable:
		unlock, err := workdir.Lock(ctx, lockPath, func() {
			b.opts.log.Infof("Waiting for cache %q, which another RUN holds", id)
		})
		if err != nil {
			return "", err
		}
		rel.push(unlock)
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := newCacheDir(dir, spec.Mount); err != nil {
			return "", fmt.Errorf("creating cache %q: %w", id, err)
		}
	}
	return dir, nil
}

// newCacheDir creates a cache directory with the mode and owner of its
// first --mount, atomically: concurrent builds see it complete or not at all.
func newCacheDir(dir string, mnt *instructions.Mount) error {
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".new-")
	if err != nil {
		return err
	}
	mode := os.FileMode(0o755)
	if mnt.Mode != nil {
		mode = os.FileMode(*mnt.Mode) & os.ModePerm
	}
	uid, gid := -1, -1
	if mnt.UID != nil {
		uid = int(*mnt.UID)
	}
	if mnt.GID != nil {
		gid = int(*mnt.GID)
	}
	err = os.Chmod(tmp, mode)
	if err == nil && (uid >= 0 || gid >= 0) {
		err = os.Lchown(tmp, uid, gid)
	}
	if err == nil {
		err = os.Rename(tmp, dir)
		if isNotEmpty(err) || errors.Is(err, os.ErrExist) {
			err = nil // another build created it first
		}
	}
	if err != nil {
		os.RemoveAll(tmp)
		return err
	}
	return nil
}

// sshMount provides an SSH agent (--ssh) to a RUN: a socket of its own,
// owned as the mount says (root, 0600 by default), served by kiln for the
// time of the RUN. The first ssh mount of a RUN is its SSH_AUTH_SOCK.
func (b *Builder) sshMount(spec mountSpec, rel *releaser) (*sandbox.Mount, []string, error) {
	id := spec.CacheID
	if id == "" {
		id = "default"
	}
	a, ok := b.opts.ssh[id]
	if !ok {
		if spec.Required {
			return nil, nil, fmt.Errorf("SSH agent %q is required but was not given (--ssh %s or --ssh %s=/path/to/key)", id, id, id)
		}
		return nil, nil, nil
	}
	// A short directory: a socket's path may not exceed 107 bytes.
	dir, err := os.MkdirTemp(b.opts.secretsDir, "ssh-")
	if err != nil {
		return nil, nil, err
	}
	rel.push(func() error { return os.RemoveAll(dir) })
	mode := os.FileMode(0o600)
	if spec.Mode != nil {
		mode = os.FileMode(*spec.Mode) & os.ModePerm
	}
	uid, gid := 0, 0
	if spec.UID != nil {
		uid = int(*spec.UID)
	}
	if spec.GID != nil {
		gid = int(*spec.GID)
	}
	open, err := a.Listen(filepath.Join(dir, "agent.sock"), uid, gid, mode)
	if err != nil {
		return nil, nil, err
	}
	rel.push(open.Close)
	var env []string
	if spec.AuthSock {
		env = append(env, "SSH_AUTH_SOCK="+spec.Target)
	}
	return &sandbox.Mount{Type: sandbox.MountBind, Source: filepath.Join(dir, "agent.sock"), Target: spec.Target}, env, nil
}

// secretMount provides a --secret to a RUN, as a read-only file or as an
// environment variable (env=NAME), or both. The file lives in memory where
// the machine allows it (see secretsDir), never in a layer.
func (b *Builder) secretMount(spec mountSpec, rel *releaser) (*sandbox.Mount, []string, error) {
	id := spec.CacheID
	if id == "" {
		id = path.Base(spec.Target)
	}
	if id == "" || id == "." || id == "/" {
		return nil, nil, errors.New("a secret mount needs an id")
	}
	value, ok := b.opts.secrets[id]
	if !ok {
		if spec.Required {
			return nil, nil, fmt.Errorf("secret %q is required but was not given (--secret id=%s,src=FILE)", id, id)
		}
		return nil, nil, nil
	}
	var env []string
	if spec.Env != nil {
		name := *spec.Env
		if name == "" {
			name = id
		}
		env = append(env, name+"="+string(value))
		if spec.Mount.Target == "" {
			return nil, env, nil
		}
	}
	target := spec.Target
	if target == "" {
		target = "/run/secrets/" + id
	}
	dir, err := os.MkdirTemp(b.opts.secretsDir, "secret-")
	if err != nil {
		return nil, nil, err
	}
	rel.push(func() error { return os.RemoveAll(dir) })
	file := filepath.Join(dir, "secret")
	mode := os.FileMode(0o400)
	if spec.Mode != nil {
		mode = os.FileMode(*spec.Mode) & os.ModePerm
	}
	if err := os.WriteFile(file, value, mode); err != nil {
		return nil, nil, err
	}
	if err := os.Chmod(file, mode); err != nil {
		return nil, nil, err
	}
	uid, gid := 0, 0
	if spec.UID != nil {
		uid = int(*spec.UID)
	}
	if spec.GID != nil {
		gid = int(*spec.GID)
	}
	if err := os.Lchown(file, uid, gid); err != nil && !b.opts.rootless {
		return nil, nil, err
	}
	return &sandbox.Mount{Type: sandbox.MountSecret, Source: file, Target: path.Clean(target), ReadOnly: true}, env, nil
}

// isNotEmpty reports a failed rmdir or rename over a directory with content.
func isNotEmpty(err error) bool {
	return errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST)
}
