package rootfs

import (
	"archive/tar"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

var (
	// ErrPathEscapes is returned for a tar entry name or hard link target
	// that climbs out of the root with "..".
	ErrPathEscapes = errors.New("path escapes the root")
	// ErrSpecialFile is returned for a device node or named pipe that
	// WithoutSpecialFiles refuses, and for a non-regular file that a
	// Root's file operations refuse to open.
	ErrSpecialFile = errors.New("not a regular file")
	// ErrTooLarge is returned by Root.ReadFile for a file over its limit.
	ErrTooLarge = errors.New("file too large")
	// errIgnoredLinkTarget is the cause of an error about a hard link to a
	// path WithIgnore protects.
	errIgnoredLinkTarget = errors.New("is an ignored path")
)

// ExtractError is the error Extract returns when it cannot read the tar
// stream or extract one of its entries. Its message names the layer
// (WithLayerName) and the entry; callers that present the stream as
// something else (a build context archive) can phrase their own from the
// fields.
type ExtractError struct {
	// Layer is the name given with WithLayerName, "" if none.
	Layer string
	// Header is the entry, nil when the stream itself could not be read.
	Header *tar.Header
	// Link says that Err concerns the entry's hard link target
	// (Header.Linkname) rather than the entry itself.
	Link bool
	// Err is the cause: ErrPathEscapes, ErrSpecialFile, a system error...
	Err error
}

func (e *ExtractError) Error() string {
	var b strings.Builder
	if e.Layer != "" {
		fmt.Fprintf(&b, "layer %s: ", e.Layer)
	}
	switch {
	case e.Header == nil:
		fmt.Fprintf(&b, "reading tar: %v", e.Err)
	case !e.Link:
		fmt.Fprintf(&b, "entry %q: %v", e.Header.Name, e.Err)
	case errors.Is(e.Err, unix.ENOENT):
		fmt.Fprintf(&b, "entry %q: hard link target %q does not exist", e.Header.Name, e.Header.Linkname)
	case errors.Is(e.Err, errIgnoredLinkTarget):
		fmt.Fprintf(&b, "entry %q: hard link target %q is an ignored path", e.Header.Name, e.Header.Linkname)
	default:
		fmt.Fprintf(&b, "entry %q: hard link target %q: %v", e.Header.Name, e.Header.Linkname, e.Err)
	}
	return b.String()
}

func (e *ExtractError) Unwrap() error { return e.Err }

// linkError marks an error of entry() as concerning the hard link target.
type linkError struct{ err error }

func (e linkError) Error() string { return e.err.Error() }
func (e linkError) Unwrap() error { return e.err }

// errno strips the *os.PathError the path libraries wrap system errors in:
// it names a host path or an internal operation, where our messages name
// the container path.
func errno(err error) error {
	if pe, ok := err.(*os.PathError); ok { //nolint:errorlint // only the outermost wrapper
		return pe.Err
	}
	return err
}
