package cache_test

import (
	"archive/tar"
	"fmt"
	"testing"
	"time"

	"github.com/kiln-build/kiln/pkg/cache"
)

// The headers of a Debian-sized layer: 6,600 entries, as the 410 MB base of
// `make bench` has per layer.
func debianHeaders() []*tar.Header {
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	var hs []*tar.Header
	for i := 0; i < 6600; i++ {
		h := &tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("usr/share/doc/package-%d/changelog.Debian.gz", i),
			Mode: 0o644, Size: int64(1000 + i), ModTime: mtime, Uname: "root", Gname: "root"}
		if i%10 == 0 {
			h.Typeflag, h.Size, h.Name = tar.TypeDir, 0, fmt.Sprintf("usr/share/doc/package-%d/", i)
		}
		hs = append(hs, h)
	}
	return hs
}

func BenchmarkReadHeaders(b *testing.B) {
	l, err := cache.HeadersLayer(debianHeaders())
	if err != nil {
		b.Fatal(err)
	}
	size, _ := l.Size()
	b.ReportMetric(float64(size), "entry-bytes")
	b.ResetTimer()
	for b.Loop() {
		if _, err := cache.ReadHeaders(l); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHeadersLayer(b *testing.B) {
	hs := debianHeaders()
	for b.Loop() {
		l, err := cache.HeadersLayer(hs)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := l.Digest(); err != nil {
			b.Fatal(err)
		}
	}
}
