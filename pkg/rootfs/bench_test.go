package rootfs

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkApply extracts a generated layer shaped like a distribution base
// image: 20,000 files of 0-8 KiB in 1,000 directories, some symlinks and hard
// links.
func BenchmarkApply(b *testing.B) {
	var entries []entry
	for d := range 1000 {
		dir := fmt.Sprintf("usr/share/pkg%03d/sub%02d", d/10, d%10)
		entries = append(entries, dirEntry(dir, 0o755))
		for f := range 20 {
			name := fmt.Sprintf("%s/file%02d", dir, f)
			switch {
			case f == 18:
				entries = append(entries, symlinkEntry(name, "file00"))
			case f == 19:
				entries = append(entries, hardlinkEntry(name, dir+"/file01"))
			default:
				entries = append(entries, fileEntry(name, strings.Repeat("x", (d*31+f*97)%8192)))
			}
		}
	}
	tarball := layer(b, entries...).Bytes()
	b.SetBytes(int64(len(tarball)))
	parent := b.TempDir()
	b.ResetTimer()
	for i := range b.N {
		root := filepath.Join(parent, fmt.Sprint(i))
		if err := os.Mkdir(root, 0o755); err != nil {
			b.Fatal(err)
		}
		if err := Apply(context.Background(), root, bytes.NewReader(tarball)); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := os.RemoveAll(root); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
