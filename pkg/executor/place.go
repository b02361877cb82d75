package executor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"

	"github.com/kiln-build/kiln/pkg/fsview"
	"github.com/kiln-build/kiln/pkg/sandbox"
)

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

func ownerOf(fi os.FileInfo) (int, int) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), int(st.Gid)
	}
	return 0, 0
}
