package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// whiteout applies the whiteout entry base found in the tar directory dir.
// Whiteouts only hide what lower layers left: entries of this layer survive
// them whether they come before or after in the tar (OCI image spec).
func (x *extractor) whiteout(dir, base string) error {
	if base != opaqueWhiteout && strings.HasPrefix(base, whiteoutMetaPrefix) {
		x.opts.log.Debugf("skipping AUFS metadata entry %q", base)
		return nil
	}
	victim := strings.TrimPrefix(base, whiteoutPrefix)
	if base != opaqueWhiteout && (victim == "" || victim == "." || victim == "..") {
		return fmt.Errorf("invalid whiteout %q", base)
	}
	if x.opts.overlayWhiteouts {
		return x.overlayWhiteout(path.Clean(dir), base, victim)
	}
	h, err := x.dir(path.Clean(dir), false)
	if err != nil || h == nil || h.ignored {
		return err // nothing there to hide
	}
	if base == opaqueWhiteout {
		return x.pruneChildren(h.fd, h.path)
	}
	return x.pruneLower(h.fd, victim, path.Join(h.path, victim))
}

// overlayWhiteout records a whiteout the way overlayfs reads it in a lower
// layer. What this layer itself writes under the name survives, as in
// Apply's own semantics: a whiteout never replaces an entry of its layer.
func (x *extractor) overlayWhiteout(dir, base, victim string) error {
	h, err := x.dir(dir, true)
	if err != nil || h.ignored {
		return err
	}
	if base == opaqueWhiteout {
		fd, err := unix.Openat(h.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Fsetxattr(fd, "trusted.overlay.opaque", []byte("y"), 0)
	}
	p := path.Join(h.path, victim)
	if x.written[p]&markWritten != 0 {
		return nil
	}
	if err := unix.Mknodat(h.fd, victim, unix.S_IFCHR, 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("overlay whiteout %q: %w", p, err)
	}
	return nil
}

// pruneLower removes name (the container path p) in dirfd unless this layer
// wrote it; a directory holding entries of this layer is kept and pruned.
func (x *extractor) pruneLower(dirfd int, name, p string) error {
	if x.ignored(p) {
		return nil
	}
	if x.written[p] == 0 {
		_, err := x.remove(dirfd, name, p)
		return err
	}
	sub, err := openDirNoFollow(dirfd, name)
	if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ENOENT) {
		return nil // a file of this layer
	}
	if err != nil {
		return fmt.Errorf("opening %q: %w", p, err)
	}
	defer unix.Close(sub)
	return x.pruneChildren(sub, p)
}

// pruneChildren prunes every entry of the directory dirfd (container path p).
func (x *extractor) pruneChildren(dirfd int, p string) error {
	names, err := readNames(dirfd)
	if err != nil {
		return fmt.Errorf("listing %q: %w", p, err)
	}
	for _, n := range names {
		if err := x.pruneLower(dirfd, n, path.Join(p, n)); err != nil {
			return err
		}
	}
	return nil
}

// remove removes name (the container path p) in dirfd like removeTree,
// keeping ignored paths, and forgets the times pending for the directories
// removed.
func (x *extractor) remove(dirfd int, name, p string) (kept bool, err error) {
	kept, err = removeTree(dirfd, name, p, x.opts.ignore, x.dirs.invalidate)
	for d := range x.dirTimes {
		if d == p || strings.HasPrefix(d, p+"/") {
			delete(x.dirTimes, d)
		}
	}
	return kept, err
}

// removeTree removes name (the container path p) in dirfd, with its content
// when it is a directory, without following symlinks. The paths keep (when
// not nil) reports are kept, and so are the directories holding them: kept
// reports that. changed (when not nil) is called before a directory or
// symlink is removed, which may change where names resolve.
func removeTree(dirfd int, name, p string, keep func(string) bool, changed func()) (kept bool, err error) {
	if keep != nil && keep(p) {
		return true, nil
	}
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		if changed != nil {
			changed()
		}
	case unix.S_IFDIR:
		if changed != nil {
			changed()
		}
		sub, err := openDirNoFollow(dirfd, name)
		if err != nil {
			return false, err
		}
		names, err := readNames(sub)
		for _, n := range names {
			if err != nil {
				break
			}
			var k bool
			k, err = removeTree(sub, n, path.Join(p, n), keep, changed)
			kept = kept || k
		}
		unix.Close(sub)
		if err != nil || kept {
			return kept, err
		}
		return false, unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
	}
	return false, unix.Unlinkat(dirfd, name, 0)
}

// readNames lists the directory dirfd, which may be an O_PATH handle.
func readNames(dirfd int) ([]string, error) {
	fd, err := unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), ".")
	defer f.Close()
	return f.Readdirnames(-1)
}
