package copier

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/kiln-build/kiln/pkg/compression"
	"github.com/kiln-build/kiln/pkg/fsview"
	"github.com/kiln-build/kiln/pkg/rootfs"
)

// openArchive recognises a tar archive, plain or compressed, by its content
// (never by its name, as Docker). When r is one, it returns a reader
// positioned after the first header and that header; release frees the
// decompressor. Anything else (a compressed file that is not a tar, an empty
// file) is reported as not an archive and is copied as it is.
func openArchive(r io.Reader) (tr *tar.Reader, first *tar.Header, release func(), ok bool) {
	dr, _, err := compression.Decompress(r)
	if err != nil {
		return nil, nil, nil, false
	}
	tr = tar.NewReader(dr)
	first, err = tr.Next()
	if err != nil {
		dr.Close()
		return nil, nil, nil, false
	}
	return tr, first, func() { dr.Close() }, true
}

// extract copies the entries of the archive s into the destination
// directory, with the ownership, modes and times they have in the archive:
// as with buildah (the reference builder) and Docker's classic builder,
// --chown and --chmod do not apply to extracted entries (recent BuildKit
// applies --chown). ok is false when s is not an archive.
//
// The destination directory is the archive's root, as when BuildKit and
// Docker extract it chrooted there: absolute names, absolute symlink
// targets and ".." all resolve inside it, whether the symlinks come from the
// archive or were there before, and nothing is created through a symlink
// that leads nowhere. An archive cannot write outside its destination.
func (c *copier) extract(s *localSource) (dir string, ok bool, err error) {
	rc, err := c.req.Src.Open(s.path)
	if err != nil {
		return "", false, fmt.Errorf("%q: %w", s.path, err)
	}
	defer rc.Close()
	tr, h, closeArchive, ok := openArchive(rc)
	if !ok {
		return "", false, nil
	}
	defer closeArchive()
	if dir, err = c.destDir(); err != nil {
		return "", true, err
	}
	// Regular files extracted so far, by archive name, for hard links.
	files := map[string]string{}
	for ; err == nil; h, err = tr.Next() {
		if err := c.ctx.Err(); err != nil {
			return "", true, err
		}
		if err := c.extractEntry(dir, tr, h, files); err != nil {
			return "", true, fmt.Errorf("archive %q: %w", s.path, err)
		}
	}
	if !errors.Is(err, io.EOF) {
		return "", true, fmt.Errorf("archive %q: %w", s.path, err)
	}
	return dir, true, nil
}

func (c *copier) extractEntry(dir string, tr *tar.Reader, h *tar.Header, files map[string]string) error {
	if h.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	name, err := archiveName(h.Name)
	if err != nil {
		return err
	}
	if name == "." {
		// The archive's root is the destination, which keeps its metadata
		// (as with Docker; GNU tar and buildah would apply it).
		return nil
	}
	parent, err := c.archiveParent(dir, path.Dir(name))
	if err != nil {
		return fmt.Errorf("entry %q: %w", h.Name, err)
	}
	target := path.Join(parent, path.Base(name))
	e := fsview.EntryFromHeader(h)
	switch h.Typeflag {
	case tar.TypeDir:
		err = c.extractDir(dir, name, target, e)
	case tar.TypeReg, tar.TypeGNUSparse:
		err = c.putNonDir(target, e, tr)
		files[name] = target
	case tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		err = c.putNonDir(target, e, nil)
	case tar.TypeLink:
		linked, lerr := archiveName(h.Linkname)
		if lerr != nil {
			return fmt.Errorf("hard link %q: %w", h.Name, lerr)
		}
		first, ok := files[linked]
		if !ok {
			return fmt.Errorf("hard link %q points to %q, which is not a file earlier in the archive", h.Name, h.Linkname)
		}
		err = c.putLink(target, e, first)
		files[name] = first
	default:
		return fmt.Errorf("entry %q: unsupported type %q", h.Name, h.Typeflag)
	}
	if err != nil {
		return fmt.Errorf("entry %q: %w", h.Name, err)
	}
	return nil
}

// extractDir writes the directory entry name (target once its parent is
// resolved). Over a symlink to a directory it fills that directory, as
// COPY does, but the symlink resolves inside the destination.
func (c *copier) extractDir(dir, name, target string, e *fsview.Entry) error {
	cur, err := c.dst.find(target)
	if err != nil {
		return err
	}
	if cur == nil || !cur.IsSymlink() {
		_, err := c.putDir(target, e)
		return err
	}
	r, err := c.resolveIn(dir, name)
	if err != nil {
		return err
	}
	if st, err := c.dst.find(r); err != nil || st == nil || !st.IsDir() {
		return fmt.Errorf("cannot extract a directory to %q: it is a symlink to %q, which leads to no directory inside the destination", target, cur.Linkname)
	}
	return c.ensureDir(r)
}

// archiveParent resolves the directory rel of the archive (relative to the
// destination directory dir) inside dir. A directory that does not exist
// yet will be created, but not through a symlink leading nowhere: as in
// Docker, an entry "s/x" after "s -> /etc" fails unless dir/etc exists.
func (c *copier) archiveParent(dir, rel string) (string, error) {
	if rel == "." {
		return dir, nil
	}
	p, err := c.resolveIn(dir, rel)
	if err != nil {
		return "", err
	}
	if e, err := c.dst.find(p); err != nil || e != nil {
		return p, err
	}
	// What is missing must be the last components of rel, created below
	// where the others lead: anything else came from a symlink's target.
	existing := p
	for existing != dir {
		existing = path.Dir(existing)
		if e, err := c.dst.find(existing); err != nil || e != nil {
			if err != nil {
				return "", err
			}
			break
		}
	}
	missing := fsview.SplitPath(strings.TrimPrefix(p, existing))
	parts := fsview.SplitPath(rel)
	k := len(parts) - len(missing)
	if k >= 0 && path.Join(parts[k:]...) == path.Join(missing...) {
		if q, err := c.resolveIn(dir, path.Join(parts[:k]...)); err == nil && q == existing {
			return p, nil
		}
	}
	return "", fmt.Errorf("%q leads, through a symlink, to %q, which does not exist in the destination: nothing is created through a dangling symlink", rel, p)
}

// resolveIn resolves rel below the resolved directory dir with dir as the
// root: absolute symlink targets start again at dir, ".." stops there.
func (c *copier) resolveIn(dir, rel string) (string, error) {
	if rel == "." || rel == "" {
		return dir, nil
	}
	in := fsview.LstatFunc(func(name string) (*fsview.Entry, error) {
		return c.dst.lstat(path.Join(dir, name))
	})
	r, err := fsview.Resolve(in, "/"+rel, true)
	if err != nil {
		return "", err
	}
	return path.Join(dir, r), nil
}

// archiveName cleans an entry name to a path relative to the destination
// ("." for the destination itself): a leading "/" is dropped, as Docker
// does, and a name climbing out with ".." is refused; the rule is rootfs's,
// the one every extraction follows.
func archiveName(name string) (string, error) {
	p, err := rootfs.EntryPath(name)
	if err != nil {
		return "", fmt.Errorf("entry %q escapes the destination directory", name)
	}
	if p == "/" {
		return ".", nil
	}
	return p[1:], nil
}
