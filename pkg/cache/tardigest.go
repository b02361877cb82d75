package cache

import (
	"archive/tar"
	"sort"
	"strconv"
	"strings"
)

// TarDigest is a tar writer (layer.TarWriter) that digests what a tar says
// about its files: type, name, link target, mode, owner, size, device
// numbers, extended attributes and content, in order, framed like a Key.
// Times are left out: touching a file does not change a key, changing a
// byte does.
type TarDigest struct {
	k       *Key
	entries int
}

// NewTarDigest starts an empty digest.
func NewTarDigest() *TarDigest {
	k := NewKey("tar")
	k.quiet = true
	return &TarDigest{k: k}
}

// Sum is the digest of what was written, for a Key field.
func (d *TarDigest) Sum() string { return d.k.Sum() }

func (d *TarDigest) WriteHeader(h *tar.Header) error {
	d.entries++
	var xattrs []string
	for k, v := range h.PAXRecords {
		if strings.HasPrefix(k, "SCHILY.xattr.") {
			xattrs = append(xattrs, k+"="+v)
		}
	}
	sort.Strings(xattrs)
	d.k.Strings("entry", []string{
		string(h.Typeflag), h.Name, h.Linkname,
		strconv.FormatInt(h.Mode, 8), strconv.Itoa(h.Uid), strconv.Itoa(h.Gid), strconv.FormatInt(h.Size, 10),
		strconv.FormatInt(h.Devmajor, 10), strconv.FormatInt(h.Devminor, 10),
	}).Strings("xattrs", xattrs)
	return nil
}

// Write adds content; the header's size frames it.
func (d *TarDigest) Write(p []byte) (int, error) { return d.k.h.Write(p) }

// Entries counts the entries written.
func (d *TarDigest) Entries() int { return d.entries }
