package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// mountPoints creates the mount points a RUN needs and that the root
// filesystem lacks ("stubs": /proc of a scratch image, /etc/hosts,
// /run/secrets/token), and removes them after the RUN, so that they do not
// end up in the layer.
//
// Creating an entry changes the modification time of the directory it is
// created in; the snapshotter takes a directory whose mtime changed for a
// changed one. So the times of each such directory are recorded before the
// first stub is created in it and after the last, and put back when the
// stubs are removed, unless the RUN changed the directory itself.
type mountPoints struct {
	rootfs string
	// created are the stubs, host paths in order of creation.
	created []string
	// dirs are the directories that existed before and got stubs.
	dirs map[string]*dirTimes
}

type dirTimes struct {
	// before is atime and mtime before the first stub.
	before [2]unix.Timespec
	// after is the mtime after the last stub.
	after unix.Timespec
}

func newMountPoints(rootfs string) *mountPoints {
	return &mountPoints{rootfs: rootfs, dirs: map[string]*dirTimes{}}
}

// ensure makes sure the mount point target (a path inside the root
// filesystem) exists as a directory, or as a file when file is set,
// creating the missing parts.
func (m *mountPoints) ensure(target string, file bool) error {
	host, err := securejoin.SecureJoin(m.rootfs, target)
	if err != nil {
		return fmt.Errorf("resolving the mount point %q: %w", target, err)
	}
	rel, err := filepath.Rel(m.rootfs, host)
	if err != nil {
		return fmt.Errorf("mount point %q: %w", target, err)
	}
	// SecureJoin resolved the symlinks: each existing part is a directory,
	// or the last part.
	parts := strings.Split(rel, string(filepath.Separator))
	dir := m.rootfs
	for i, name := range parts {
		p := filepath.Join(dir, name)
		last := i == len(parts)-1
		st, err := os.Lstat(p)
		switch {
		case err == nil && !last:
			dir = p
			continue
		case err == nil && st.IsDir() == file:
			return fmt.Errorf("mount point %q: want a %s, found a %s", target, entryKind(!file), entryKind(st.IsDir()))
		case err == nil:
			return nil
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("mount point %q: %w", target, err)
		}
		if err := m.create(dir, p, last && file); err != nil {
			return fmt.Errorf("creating the mount point %q: %w", target, err)
		}
		dir = p
	}
	return nil
}

// create creates the stub p in dir.
func (m *mountPoints) create(dir, p string, file bool) error {
	times, existed := m.dirs[dir]
	if !existed && !m.isStub(dir) {
		st, err := stat(dir)
		if err != nil {
			return err
		}
		times = &dirTimes{before: [2]unix.Timespec{st.Atim, st.Mtim}}
		m.dirs[dir] = times
	}
	var err error
	if file {
		var f *os.File
		if f, err = os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); err == nil {
			err = f.Close()
		}
	} else {
		err = os.Mkdir(p, 0o755)
	}
	if err != nil {
		return err
	}
	m.created = append(m.created, p)
	if times != nil {
		st, err := stat(dir)
		if err != nil {
			return err
		}
		times.after = st.Mtim
	}
	return nil
}

func (m *mountPoints) isStub(p string) bool {
	for _, c := range m.created {
		if c == p {
			return true
		}
	}
	return false
}

// remove removes the stubs and puts back the times of the directories they
// were in. A stub directory the RUN created entries in stays: it belongs to
// the RUN's changes now.
func (m *mountPoints) remove() error {
	// The mtime of each directory as the RUN left it.
	left := map[string]unix.Timespec{}
	for dir := range m.dirs {
		st, err := stat(dir)
		if err != nil {
			return err
		}
		left[dir] = st.Mtim
	}
	var errs []error
	kept := map[string]bool{}
	for i := len(m.created) - 1; i >= 0; i-- {
		p := m.created[i]
		err := os.Remove(p)
		switch {
		case err == nil, errors.Is(err, fs.ErrNotExist):
		case errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST):
			kept[filepath.Dir(p)] = true
		default:
			errs = append(errs, fmt.Errorf("removing the mount point %q: %w", p, err))
			kept[filepath.Dir(p)] = true
		}
	}
	for dir, times := range m.dirs {
		if kept[dir] {
			continue
		}
		// If the RUN changed the directory, its mtime is the RUN's.
		ts := [2]unix.Timespec{{Nsec: unix.UTIME_OMIT}, left[dir]}
		if left[dir] == times.after {
			ts = times.before
		}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, dir, ts[:], unix.AT_SYMLINK_NOFOLLOW); err != nil {
			errs = append(errs, fmt.Errorf("restoring the times of %q: %w", dir, err))
		}
	}
	return errors.Join(errs...)
}

func entryKind(dir bool) string {
	if dir {
		return "directory"
	}
	return "file"
}

func stat(p string) (*unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: p, Err: err}
	}
	return &st, nil
}
