package rootfs

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/kiln-build/kiln/pkg/fsview"
	"golang.org/x/sys/unix"
)

// replace runs mk, which creates the entry at; when the name is taken it
// removes what is there, a directory with its content, and runs mk again.
func (x *extractor) replace(at target, mk func() error) error {
	err := mk()
	if !errors.Is(err, unix.EEXIST) {
		return err
	}
	if err := x.removeExisting(at); err != nil {
		return err
	}
	return mk()
}

func (x *extractor) removeExisting(at target) error {
	if at.p == "/" {
		return errors.New("the root can only be a directory")
	}
	kept, err := x.remove(at.dir, at.base, at.p)
	if err != nil {
		return fmt.Errorf("replacing %q: %w", at.p, err)
	}
	if kept {
		return fmt.Errorf("cannot replace %q: it holds ignored paths", at.p)
	}
	return nil
}

// makeDir creates a directory, or updates the metadata of an existing one
// and keeps its content.
func (x *extractor) makeDir(at target, hdr *tar.Header) error {
	existing := false
	err := unix.Mkdirat(at.dir, at.base, 0o700)
	if errors.Is(err, unix.EEXIST) {
		var st unix.Stat_t
		if err = unix.Fstatat(at.dir, at.base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				existing = true
			} else if err = x.removeExisting(at); err == nil {
				err = unix.Mkdirat(at.dir, at.base, 0o700)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("creating directory: %w", err)
	}
	if hdr.Mode&0o2000 != 0 {
		x.dirs.invalidate() // a cached handle may have recorded it without setgid
	}
	return x.setMetadata(at, hdr, existing, false)
}

// writeFile creates a regular file with the entry's content.
func (x *extractor) writeFile(at target, hdr *tar.Header, r io.Reader) error {
	// Created with its final permissions, the file needs no chmod when the
	// umask leaves them alone and no chown will clear bits.
	perm := uint32(hdr.Mode & 0o777)
	modeDone := x.umask >= 0 && perm&uint32(x.umask) == 0 && hdr.Mode&0o7000 == 0 && !x.needsChown(at, hdr, false)
	if !modeDone {
		perm = 0o600
	}
	var fd int
	err := x.replace(at, func() (err error) {
		fd, err = unix.Openat(at.dir, at.base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
		return err
	})
	if err != nil {
		return fmt.Errorf("creating file: %w", err)
	}
	if hdr.Size > 0 {
		// fdWriter has no ReadFrom, so CopyBuffer uses the extractor's
		// buffer instead of allocating one per file.
		_, err = io.CopyBuffer(fdWriter(fd), r, x.buf)
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing file: %w", err)
	}
	return x.setMetadata(at, hdr, false, modeDone)
}

type fdWriter int

func (w fdWriter) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Write(int(w), p[n:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return n, err
		}
		n += m
	}
	return n, nil
}

// makeNode creates a device node or a fifo. Where device nodes may not be
// created (a user namespace, no CAP_MKNOD) they are skipped with a warning:
// images carry them rarely and containers get /dev from the runtime.
func (x *extractor) makeNode(at target, hdr *tar.Header) error {
	mode := uint32(hdr.Mode & 0o7777)
	switch hdr.Typeflag {
	case tar.TypeChar:
		mode |= unix.S_IFCHR
	case tar.TypeBlock:
		mode |= unix.S_IFBLK
	default:
		mode |= unix.S_IFIFO
	}
	dev := int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
	err := x.replace(at, func() error { return unix.Mknodat(at.dir, at.base, mode, dev) })
	if errors.Is(err, unix.EPERM) && hdr.Typeflag != tar.TypeFifo {
		x.warnOnce("mknod", "skipping device node %q: creating device nodes is not permitted here", at.p)
		return nil
	}
	if err != nil {
		return fmt.Errorf("creating node: %w", err)
	}
	return x.setMetadata(at, hdr, false, false)
}

// setMetadata applies owner, mode, xattrs and times, in that order: chown
// clears the setuid and setgid bits and file capabilities (the
// security.capability xattr). Directory times are set once the whole layer
// is written, since creating their content changes them. modeDone says the
// entry was created with its mode already.
func (x *extractor) setMetadata(at target, hdr *tar.Header, existingDir, modeDone bool) error {
	if err := x.chown(at, hdr, existingDir); err != nil {
		return err
	}
	// Symlinks have no mode of their own on Linux.
	if hdr.Typeflag != tar.TypeSymlink && !modeDone {
		if err := unix.Fchmodat(at.dir, at.base, uint32(hdr.Mode&0o7777), 0); err != nil {
			return fmt.Errorf("setting mode %o: %w", hdr.Mode&0o7777, err)
		}
	}
	if err := x.setXattrs(at, hdr, existingDir); err != nil {
		return err
	}
	ts, ok := headerTimes(hdr)
	if !ok {
		return nil
	}
	if hdr.Typeflag == tar.TypeDir {
		x.dirTimes[at.p] = ts
		return nil
	}
	if err := unix.UtimesNanoAt(at.dir, at.base, ts[:], unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("setting times: %w", err)
	}
	return nil
}

// chown sets the entry's owner. A new entry already has the right one when
// the tar asks for the extracting user's ids (root, in most builds) and no
// setgid directory imposed its group: that chown is skipped.
func (x *extractor) chown(at target, hdr *tar.Header, existing bool) error {
	if !x.needsChown(at, hdr, existing) {
		return nil
	}
	err := unix.Fchownat(at.dir, at.base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW)
	if err == nil {
		return nil
	}
	if !x.opts.ignoreChownErrors || !(errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL)) {
		return fmt.Errorf("setting owner %d:%d: %w", hdr.Uid, hdr.Gid, err)
	}
	x.warnOnce("chown", "cannot set owner %d:%d of %q (%v): keeping the extracting user as owner", hdr.Uid, hdr.Gid, at.p, err)
	return nil
}

func (x *extractor) needsChown(at target, hdr *tar.Header, existing bool) bool {
	if x.opts.noOwners {
		return false
	}
	return existing || hdr.Uid != x.uid || hdr.Gid != x.gid || at.setgid
}

const xattrPAXPrefix = "SCHILY.xattr."

// setXattrs sets the entry's extended attributes. An existing directory
// also loses those the entry does not list, since the entry describes it
// whole; security.* ones (SELinux labels and the like) belong to the host
// and are left alone.
func (x *extractor) setXattrs(at target, hdr *tar.Header, existingDir bool) error {
	p := procPath(at.dir, at.base)
	for k, v := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, xattrPAXPrefix); ok {
			if err := x.xattrError(at, name, unix.Lsetxattr(p, name, []byte(v), 0)); err != nil {
				return err
			}
		}
	}
	if !existingDir {
		return nil
	}
	have, err := fsview.ReadXattrs(p)
	if err != nil {
		return err
	}
	for name := range have {
		if _, ok := hdr.PAXRecords[xattrPAXPrefix+name]; ok || strings.HasPrefix(name, "security.") {
			continue
		}
		if err := x.xattrError(at, name, unix.Lremovexattr(p, name)); err != nil {
			return err
		}
	}
	return nil
}

// xattrError tolerates what an unprivileged extraction cannot do: trusted.*
// needs CAP_SYS_ADMIN in the initial namespace, and some filesystems refuse
// security.* names.
func (x *extractor) xattrError(at target, name string, err error) error {
	if err == nil {
		return nil
	}
	privileged := strings.HasPrefix(name, "trusted.") || strings.HasPrefix(name, "security.")
	if privileged && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOTSUP)) {
		x.opts.log.Debugf("skipping xattr %q of %q: %v", name, at.p, err)
		return nil
	}
	return fmt.Errorf("xattr %q: %w", name, err)
}

// headerTimes returns the access and modification times for utimensat; an
// entry without a modification time keeps the current ones.
func headerTimes(hdr *tar.Header) ([2]unix.Timespec, bool) {
	if hdr.ModTime.IsZero() {
		return [2]unix.Timespec{}, false
	}
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	return [2]unix.Timespec{timespec(atime), timespec(hdr.ModTime)}, true
}

func timespec(t time.Time) unix.Timespec {
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}

// setDirTimes sets the times of the layer's directories, now that nothing
// more is written into them.
func (x *extractor) setDirTimes() error {
	for p, ts := range x.dirTimes {
		x.dirs.refresh()
		at := target{dir: x.dirs.rootFd, base: ".", p: "/"}
		if p != "/" {
			h, err := x.dir(path.Dir(p), false)
			if err != nil {
				return fmt.Errorf("setting times of %q: %w", p, err)
			}
			if h == nil || h.ignored {
				continue
			}
			at = target{dir: h.fd, base: path.Base(p), p: p}
		}
		err := unix.UtimesNanoAt(at.dir, at.base, ts[:], unix.AT_SYMLINK_NOFOLLOW)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("setting times of %q: %w", p, err)
		}
	}
	return nil
}
