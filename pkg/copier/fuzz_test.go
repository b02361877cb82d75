package copier

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/pkg/fsview"
	"github.com/kiln-build/kiln/pkg/rootfs/rootfstest"
)

// FuzzAddArchive extracts a fuzzed archive (see rootfstest.Tar for the
// script syntax) with ADD into /opt/app/ of an image whose /opt/app holds
// symlinks out of it, and checks that every entry the layer gets (and every
// hard link target) is the destination, its parents, or below it: the
// archive is confined to its destination whatever its names and symlinks
// say, even in the part of the layer written before an error.
func FuzzAddArchive(f *testing.F) {
	// Seeds: testdata/fuzz/FuzzAddArchive.
	image := fsview.MapFS{
		"/etc":          dir(0o755),
		"/etc/passwd":   file("root", 0o644),
		"/opt/app":      dir(0o755),
		"/opt/app/out":  symlink("/etc"),
		"/opt/app/up":   symlink("../../.."),
		"/opt/app/self": symlink("."),
		"/opt/app/data": dir(0o755),
	}
	f.Fuzz(func(t *testing.T, script string) {
		archive := rootfstest.Tar(script, nil)
		req := &Request{Sources: []string{"a.tar"}, Dest: "/opt/app/", Src: fsview.MapFS{"/a.tar": file(string(archive), 0o644)}, Dst: image, Add: true}
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		_, err := Copy(context.Background(), req, tw)
		if err == nil {
			if err := tw.Close(); err != nil {
				t.Fatal(err)
			}
		}
		tr := tar.NewReader(&buf)
		for {
			h, rerr := tr.Next()
			if rerr != nil {
				if err == nil && !errors.Is(rerr, io.EOF) {
					t.Fatalf("reading the layer: %v", rerr)
				}
				break
			}
			for _, p := range []string{h.Name, h.Linkname} {
				if p == "" || (p == h.Linkname && h.Typeflag != tar.TypeLink) {
					continue
				}
				if p != "opt" && p != "opt/app" && !strings.HasPrefix(p, "opt/app/") {
					t.Fatalf("the layer gets %q (%c) outside the destination (copy error: %v)", p, h.Typeflag, err)
				}
			}
		}
	})
}
