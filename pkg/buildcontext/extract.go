package buildcontext

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// extractTar extracts a context archive into dir. Every path is resolved
// inside dir (symlinks included, with chroot semantics), so no entry can
// write outside it; names that climb out of the archive with ".." are
// rejected. Modes and modification times are kept, since COPY preserves
// them; ownership is not (COPY from the context sets it).
func extractTar(ctx context.Context, r io.Reader, dir string) error {
	root, err := os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer root.Close()
	x := &extractor{root: root}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the archive: %w", err)
		}
		if err := x.entry(h, tr); err != nil {
			return fmt.Errorf("archive entry %q: %w", h.Name, err)
		}
	}
	return x.dirTimes()
}

type extractor struct {
	root *os.File
	// dirs are the directories extracted, in archive order. Their times are
	// set at the end: writing into a directory changes its time.
	dirs []dirTime
}

type dirTime struct {
	name    string
	modTime time.Time
}

// errEscapes rejects names that lead out of the archive's root.
var errEscapes = errors.New("the path leads outside the archive's root")

// cleanName makes an entry name relative and clean; "" is the root itself.
// Absolute names count from the root, as in Docker.
func cleanName(name string) (string, error) {
	p := path.Clean(strings.TrimLeft(name, "/"))
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", errEscapes
	}
	if p == "." {
		return "", nil
	}
	return p, nil
}

func (x *extractor) entry(h *tar.Header, r io.Reader) error {
	name, err := cleanName(h.Name)
	if err != nil {
		return err
	}
	switch h.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil
	case tar.TypeDir, tar.TypeReg, tar.TypeGNUSparse, tar.TypeSymlink, tar.TypeLink:
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return errors.New("device nodes and named pipes are not supported in a build context")
	default:
		return fmt.Errorf("unsupported entry type %q", h.Typeflag)
	}
	if name == "" {
		if h.Typeflag != tar.TypeDir {
			return errors.New("the archive's root is not a directory")
		}
		return nil
	}
	if h.Typeflag == tar.TypeDir {
		return x.dir(name, h)
	}
	parent, err := x.parent(name)
	if err != nil {
		return err
	}
	defer parent.Close()
	pfd, base := int(parent.Fd()), path.Base(name)
	if err := replace(pfd, base, false); err != nil {
		return err
	}
	switch h.Typeflag {
	case tar.TypeSymlink:
		if err := unix.Symlinkat(h.Linkname, pfd, base); err != nil {
			return err
		}
	case tar.TypeLink:
		if err := x.link(h.Linkname, pfd, base); err != nil {
			return err
		}
		return nil // a hard link shares the times of its target
	default:
		if err := writeFile(pfd, base, h, r); err != nil {
			return err
		}
	}
	return setTimes(pfd, base, h.ModTime)
}

func (x *extractor) dir(name string, h *tar.Header) error {
	parent, err := x.parent(name)
	if err != nil {
		return err
	}
	defer parent.Close()
	pfd, base := int(parent.Fd()), path.Base(name)
	if err := replace(pfd, base, true); err != nil {
		return err
	}
	if err := unix.Mkdirat(pfd, base, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return err
	}
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Fchmod(fd, uint32(h.Mode&0o7777)); err != nil {
		return err
	}
	x.dirs = append(x.dirs, dirTime{name, h.ModTime})
	return nil
}

// parent returns a handle on the directory of name, creating it and its
// parents as needed, inside the root.
func (x *extractor) parent(name string) (*os.File, error) {
	dir := path.Dir(name)
	h, err := pathrs.MkdirAllHandle(x.root, dir, 0o755)
	if err != nil {
		return nil, fmt.Errorf("creating its directory %q: %w", dir, err)
	}
	return h, nil
}

// link creates a hard link to target, an earlier entry of the archive.
func (x *extractor) link(target string, pfd int, base string) error {
	t, err := cleanName(target)
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", target, err)
	}
	if t == "" {
		return fmt.Errorf("hard link target %q is the archive's root", target)
	}
	tparent, err := pathrs.OpenatInRoot(x.root, path.Dir(t))
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", target, err)
	}
	defer tparent.Close()
	if err := unix.Linkat(int(tparent.Fd()), path.Base(t), pfd, base, 0); err != nil {
		return fmt.Errorf("hard link to %q: %w", target, err)
	}
	return nil
}

// replace removes what stands at base in the directory pfd, as a later
// archive entry replaces an earlier one; a directory that is to stay a
// directory is kept.
func replace(pfd int, base string, keepDir bool) error {
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return unix.Unlinkat(pfd, base, 0)
	}
	if keepDir {
		return nil
	}
	if err := unix.Unlinkat(pfd, base, unix.AT_REMOVEDIR); err != nil {
		return fmt.Errorf("replacing a directory: %w", err)
	}
	return nil
}

func writeFile(pfd int, base string, h *tar.Header, r io.Reader) error {
	fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), base)
	defer f.Close()
	if _, err := io.Copy(f, r); err != nil {
		return err
	}
	// fchmod, unlike the mode given to open, is not reduced by the umask.
	if err := unix.Fchmod(fd, uint32(h.Mode&0o7777)); err != nil {
		return err
	}
	return f.Close()
}

func setTimes(pfd int, base string, t time.Time) error {
	ts := unix.NsecToTimespec(t.UnixNano())
	return unix.UtimesNanoAt(pfd, base, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}

// dirTimes sets the times of the extracted directories; a directory that
// appears twice gets the time of its last entry.
func (x *extractor) dirTimes() error {
	for _, d := range x.dirs {
		parent, err := pathrs.OpenatInRoot(x.root, path.Dir(d.name))
		if err != nil {
			return fmt.Errorf("archive entry %q: %w", d.name, err)
		}
		err = setTimes(int(parent.Fd()), path.Base(d.name), d.modTime)
		parent.Close()
		if err != nil {
			return fmt.Errorf("archive entry %q: %w", d.name, err)
		}
	}
	return nil
}
