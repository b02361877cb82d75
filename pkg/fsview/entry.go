package fsview

import (
	"archive/tar"
	"io/fs"
	"strings"
)

// xattrPAXPrefix is how tar (and OCI layers) carry extended attributes.
const xattrPAXPrefix = "SCHILY.xattr."

// EntryFromHeader converts a tar header of a layer to an Entry. The entry's
// Path is the header name made absolute and clean. Hard links (TypeLink) are
// not resolved here: they come back as regular files with Inode set to the
// clean absolute path of the link target.
func EntryFromHeader(h *tar.Header) *Entry {
	e := &Entry{
		Path:     Clean(h.Name),
		Size:     h.Size,
		UID:      h.Uid,
		GID:      h.Gid,
		ModTime:  h.ModTime,
		Devmajor: h.Devmajor,
		Devminor: h.Devminor,
	}
	perm := fs.FileMode(h.Mode).Perm()
	if h.Mode&0o4000 != 0 {
		perm |= fs.ModeSetuid
	}
	if h.Mode&0o2000 != 0 {
		perm |= fs.ModeSetgid
	}
	if h.Mode&0o1000 != 0 {
		perm |= fs.ModeSticky
	}
	switch h.Typeflag {
	case tar.TypeDir:
		e.Mode = perm | fs.ModeDir
	case tar.TypeSymlink:
		e.Mode = perm | fs.ModeSymlink
		e.Linkname = h.Linkname
	case tar.TypeLink:
		e.Mode = perm
		e.Inode = Clean(h.Linkname)
	case tar.TypeChar:
		e.Mode = perm | fs.ModeDevice | fs.ModeCharDevice
	case tar.TypeBlock:
		e.Mode = perm | fs.ModeDevice
	case tar.TypeFifo:
		e.Mode = perm | fs.ModeNamedPipe
	default:
		e.Mode = perm
	}
	for k, v := range h.PAXRecords {
		if strings.HasPrefix(k, xattrPAXPrefix) {
			if e.Xattrs == nil {
				e.Xattrs = map[string]string{}
			}
			e.Xattrs[strings.TrimPrefix(k, xattrPAXPrefix)] = v
		}
	}
	return e
}

// Header returns a tar header describing e under the layer-relative name
// (no leading slash). Regular files get e.Size; the caller writes hard links
// (TypeLink) itself since only it knows which entry came first.
func (e *Entry) Header() *tar.Header {
	h := &tar.Header{
		Name:     strings.TrimPrefix(e.Path, "/"),
		Mode:     TarMode(e.Mode),
		Uid:      e.UID,
		Gid:      e.GID,
		ModTime:  e.ModTime,
		Devmajor: e.Devmajor,
		Devminor: e.Devminor,
		Format:   tar.FormatPAX,
	}
	switch {
	case e.Mode.IsDir():
		h.Typeflag = tar.TypeDir
	case e.Mode&fs.ModeSymlink != 0:
		h.Typeflag = tar.TypeSymlink
		h.Linkname = e.Linkname
	case e.Mode&fs.ModeCharDevice != 0:
		h.Typeflag = tar.TypeChar
	case e.Mode&fs.ModeDevice != 0:
		h.Typeflag = tar.TypeBlock
	case e.Mode&fs.ModeNamedPipe != 0:
		h.Typeflag = tar.TypeFifo
	default:
		h.Typeflag = tar.TypeReg
		h.Size = e.Size
	}
	if len(e.Xattrs) > 0 {
		h.PAXRecords = make(map[string]string, len(e.Xattrs))
		for k, v := range e.Xattrs {
			h.PAXRecords[xattrPAXPrefix+k] = v
		}
	}
	return h
}

// TarMode converts Go file mode permission bits (with setuid, setgid and
// sticky) to the numeric mode stored in tar headers and used by chmod.
func TarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}
