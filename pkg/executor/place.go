package executor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/pkg/fsview"
	"github.com/kiln-build/kiln/pkg/rootfs"
	"github.com/kiln-build/kiln/pkg/sandbox"
)

// placeMount sets up one mount target inside the directory rootDir ("/"
// in-place) and returns the container path it used (symlinks on the way
// resolved) and the function that undoes it. Paths inside the root are
// resolved through rootfs.Root, then and at the undo.
func placeMount(rootDir, workDir string, mt sandbox.Mount) (string, func() error, error) {
	r, err := rootfs.OpenRoot(rootDir)
	if err != nil {
		return "", nil, err
	}
	defer r.Close()
	created, err := r.MkdirAll(path.Dir(mt.Target), 0o755, nil)
	removeCreated := func(r *rootfs.Root) error {
		var errs []error
		for i := len(created) - 1; i >= 0; i-- {
			errs = append(errs, r.Remove(created[i]))
		}
		return errors.Join(errs...)
	}
	if err != nil {
		removeCreated(r)
		return "", nil, err
	}
	parent, err := r.Resolve(path.Dir(mt.Target))
	if err != nil {
		removeCreated(r)
		return "", nil, err
	}
	placed := path.Join(parent, path.Base(mt.Target))
	touched := parent // whose time the placement changes
	if len(created) > 0 {
		touched = path.Dir(created[0])
	}
	st, err := r.Stat(touched)
	if err != nil {
		removeCreated(r)
		return "", nil, err
	}
	mtime := st.ModTime()
	aside := ""
	if _, err := r.Lstat(placed); err == nil {
		d, err := os.MkdirTemp(workDir, "aside-")
		if err != nil {
			removeCreated(r)
			return "", nil, err
		}
		aside = filepath.Join(d, "content")
		if err := moveOut(r, placed, aside); err != nil {
			os.Remove(d)
			removeCreated(r)
			return "", nil, err
		}
	}
	isCache := mt.Type == sandbox.MountCache
	undo := func() error {
		r, err := rootfs.OpenRoot(rootDir)
		if err != nil {
			return err
		}
		defer r.Close()
		var errs []error
		if isCache {
			errs = append(errs, moveOut(r, placed, mt.Source))
		} else {
			errs = append(errs, r.RemoveAll(placed))
		}
		if aside != "" {
			errs = append(errs, moveIn(aside, r, placed), os.Remove(filepath.Dir(aside)))
		}
		errs = append(errs, removeCreated(r), r.Chtimes(touched, mtime, mtime))
		return errors.Join(errs...)
	}
	switch mt.Type {
	case sandbox.MountSecret, sandbox.MountBind:
		err = copyHost(mt.Source, filepath.Join(rootDir, placed))
	case sandbox.MountCache:
		err = moveIn(mt.Source, r, placed)
	case sandbox.MountTmpfs:
		_, err = r.MkdirAll(placed, 0o777|fs.ModeSticky, nil)
	default:
		err = fmt.Errorf("unknown mount type %q", mt.Type)
	}
	if err != nil {
		undo()
		return "", nil, err
	}
	return placed, undo, nil
}

// moveIn moves the host path src to p inside r, copying it when they are
// on different filesystems (a cache on a volume, say).
func moveIn(src string, r *rootfs.Root, p string) error {
	sr, err := rootfs.OpenRoot(filepath.Dir(src))
	if err != nil {
		return err
	}
	defer sr.Close()
	err = rootfs.Rename(sr, filepath.Base(src), r, p)
	if !errors.Is(err, unix.EXDEV) {
		return err
	}
	if err := copyHost(src, filepath.Join(r.Dir(), p)); err != nil {
		return err
	}
	return os.RemoveAll(src)
}

// moveOut moves p inside r to the host path dst, copying it across
// filesystems.
func moveOut(r *rootfs.Root, p, dst string) error {
	dr, err := rootfs.OpenRoot(filepath.Dir(dst))
	if err != nil {
		return err
	}
	defer dr.Close()
	err = rootfs.Rename(r, p, dr, filepath.Base(dst))
	if !errors.Is(err, unix.EXDEV) {
		return err
	}
	if err := copyHost(filepath.Join(r.Dir(), p), dst); err != nil {
		return err
	}
	return r.RemoveAll(p)
}

// copyHost copies the file or directory src to the new path dst, keeping
// modes, owners, times and links.
func copyHost(src, dst string) error {
	st, err := os.Lstat(src)
	if err != nil {
		return err
	}
	if st.Mode()&os.ModeSocket != 0 {
		// A socket cannot be copied: in-place, where "/" is the root, a
		// link to it reaches it.
		return os.Symlink(src, dst)
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

func ownerOf(fi os.FileInfo) (int, int) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), int(st.Gid)
	}
	return 0, 0
}
