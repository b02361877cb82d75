package buildcontext

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/sirupsen/logrus"

	"github.com/kiln-build/kiln/pkg/rootfs"
)

// extractTar extracts a context archive into dir with the extractor of image
// layers (rootfs), set up for an archive that is not one: ownership is not
// kept (COPY from the context sets it), device nodes and named pipes are
// refused, and ".wh." names are files like any other. Modes and times are
// kept, since COPY preserves them, except those of the archive's root
// entry. Every path is resolved inside dir (symlinks included, with chroot
// semantics), so no entry can write outside it; names that climb out of
// the archive with ".." are rejected.
func extractTar(ctx context.Context, r io.Reader, dir string, log logrus.FieldLogger) error {
	root, err := rootfs.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	err = root.Extract(ctx, r, rootfs.WithoutOwners(), rootfs.WithoutSpecialFiles(), rootfs.WithLiteralWhiteouts(),
		rootfs.WithFilter(notRoot), rootfs.WithLogger(log))
	return archiveError(err)
}

// notRoot skips the archive's entry for its root, as Docker does: the
// directory it is extracted into keeps its own metadata.
func notRoot(p string) bool {
	return p != "/"
}

// errEscapes rejects names that lead out of the archive's root.
var errEscapes = errors.New("the path leads outside the archive's root")

// archiveError words an extraction error for a context archive: its entries
// are "archive entries", its root "the archive's root".
func archiveError(err error) error {
	var xe *rootfs.ExtractError
	if !errors.As(err, &xe) {
		return err
	}
	if xe.Header == nil {
		return fmt.Errorf("reading the archive: %w", xe.Err)
	}
	cause := xe.Err
	switch {
	case errors.Is(cause, rootfs.ErrPathEscapes):
		cause = errEscapes
	case errors.Is(cause, rootfs.ErrSpecialFile):
		cause = errors.New("device nodes and named pipes are not supported in a build context")
	}
	if xe.Link {
		return fmt.Errorf("archive entry %q: hard link target %q: %w", xe.Header.Name, xe.Header.Linkname, cause)
	}
	return fmt.Errorf("archive entry %q: %w", xe.Header.Name, cause)
}
