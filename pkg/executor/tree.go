package executor

import (
	"archive/tar"
	"context"
	"fmt"
	"io"

	"github.com/kiln-build/kiln/pkg/copier"
	"github.com/kiln-build/kiln/pkg/fsview"
	"github.com/kiln-build/kiln/pkg/rootfs"
)

// copyTree copies srcPath of fsys (a directory's contents, or a file) to
// dest inside the directory dst on disk, keeping ownership (unless opts
// say otherwise), modes, links and times. It streams: the copier's tar
// goes straight into extraction.
func copyTree(ctx context.Context, fsys fsview.FS, srcPath, dst, dest string, opts ...rootfs.Option) error {
	dstFS, err := fsview.NewDirFS(dst)
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		tw := tar.NewWriter(pw)
		_, err := copier.Copy(ctx, &copier.Request{Sources: []string{srcPath}, Dest: dest, Src: fsys, Dst: dstFS}, tw)
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
		done <- err
	}()
	err = rootfs.Apply(ctx, dst, pr, opts...)
	pr.CloseWithError(io.ErrClosedPipe)
	if cerr := <-done; cerr != nil {
		return fmt.Errorf("copying %q: %w", srcPath, cerr)
	}
	if err != nil {
		return fmt.Errorf("copying %q: %w", srcPath, err)
	}
	return nil
}
