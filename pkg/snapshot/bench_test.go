package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/kiln-build/kiln/pkg/rootfs"
)

// benchTree extracts a root of 50,000 files (2,500 directories of 20 small
// files) into a temporary directory.
func benchTree(b *testing.B) string {
	b.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for d := range 2500 {
		dir := fmt.Sprintf("usr/lib/pkg%02d/mod%03d", d/100, d%100)
		must(b, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755}))
		for f := range 20 {
			body := fmt.Sprintf("file %d of %s", f, dir)
			must(b, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("%s/f%02d", dir, f), Mode: 0o644, Size: int64(len(body))}))
			_, err := io.WriteString(tw, body)
			must(b, err)
		}
	}
	must(b, tw.Close())
	root := b.TempDir()
	must(b, rootfs.Apply(context.Background(), root, &buf))
	return root
}

// BenchmarkBaseline measures the metadata walk over 50,000 files.
func BenchmarkBaseline(b *testing.B) {
	root := benchTree(b)
	s := New(root)
	b.ResetTimer()
	for range b.N {
		must(b, s.Baseline(context.Background()))
	}
}

// BenchmarkDiffOneChange measures a snapshot of 50,000 files of which one
// changed: the walk should be all of it.
func BenchmarkDiffOneChange(b *testing.B) {
	root := benchTree(b)
	s := New(root)
	must(b, s.Baseline(context.Background()))
	changed := root + "/usr/lib/pkg12/mod034/f05"
	b.ResetTimer()
	for i := range b.N {
		must(b, os.WriteFile(changed, []byte(fmt.Sprint("change ", i)), 0o644))
		stats, err := s.Diff(context.Background(), tar.NewWriter(io.Discard))
		must(b, err)
		if stats.Changed != 1 {
			b.Fatalf("stats = %+v", stats)
		}
	}
}
