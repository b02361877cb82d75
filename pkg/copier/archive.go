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
	parent, err := c.dst.resolve(path.Join(dir, path.Dir(name)), true)
	if err != nil {
		return fmt.Errorf("entry %q: %w", h.Name, err)
	}
	target := path.Join(parent, path.Base(name))
	e := fsview.EntryFromHeader(h)
	switch h.Typeflag {
	case tar.TypeDir:
		_, err = c.putDir(target, e)
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

// archiveName cleans an entry name to a path relative to the destination:
// a leading "/" is dropped, as Docker does, and a name climbing out with
// ".." is refused.
func archiveName(name string) (string, error) {
	n := strings.TrimLeft(path.Clean(name), "/")
	if n == "" {
		n = "."
	}
	if n == ".." || strings.HasPrefix(n, "../") {
		return "", fmt.Errorf("entry %q escapes the destination directory", name)
	}
	return n, nil
}
