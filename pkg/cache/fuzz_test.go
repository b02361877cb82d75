package cache_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/klauspost/compress/gzip"

	"github.com/kiln-build/kiln/pkg/cache"
)

// FuzzReadHeaders feeds headers entries as a damaged or hostile cache could
// hold them: ReadHeaders either decodes them or says the entry is corrupt,
// and what it decodes encodes to an entry that decodes the same.
func FuzzReadHeaders(f *testing.F) {
	seed, err := cache.HeadersLayer([]*tar.Header{
		{Typeflag: tar.TypeDir, Name: "etc/", Mode: 0o755, ModTime: time.Unix(0, 0)},
		{Typeflag: tar.TypeReg, Name: "etc/passwd", Mode: 0o644, Size: 42, PAXRecords: map[string]string{"SCHILY.xattr.user.x": "y"}},
		{Typeflag: tar.TypeSymlink, Name: "bin", Linkname: "usr/bin"},
	})
	if err != nil {
		f.Fatal(err)
	}
	blob, err := seed.Compressed()
	if err != nil {
		f.Fatal(err)
	}
	var buf bytes.Buffer
	buf.ReadFrom(blob)
	f.Add(buf.Bytes(), false)
	f.Add([]byte(`{"t":48,"n":"a","m":420,"s":3}`+"\n"+`{"t":53,"n":"d/"}`), true)
	f.Add([]byte(`{"t":48,"n":"a","s":-1}`), true)
	f.Fuzz(func(t *testing.T, data []byte, plain bool) {
		if plain { // the fuzzer mutates JSON lines, gzipped here
			var z bytes.Buffer
			zw := gzip.NewWriter(&z)
			zw.Write(data)
			zw.Close()
			data = z.Bytes()
		}
		headers, err := cache.ReadHeaders(static.NewLayer(data, cache.HeadersMediaType))
		if err != nil {
			if !errors.Is(err, cache.ErrCorrupt) {
				t.Fatalf("an unreadable entry is not reported as corrupt: %v", err)
			}
			return
		}
		l, err := cache.HeadersLayer(headers)
		if err != nil {
			t.Fatalf("decoded headers do not encode: %v", err)
		}
		again, err := cache.ReadHeaders(l)
		if err != nil || len(again) != len(headers) {
			t.Fatalf("a round trip lost entries: %d then %d, %v", len(headers), len(again), err)
		}
		for i := range headers {
			a, b := headers[i], again[i]
			if a.Name != b.Name || a.Size != b.Size || a.Mode != b.Mode || a.Typeflag != b.Typeflag || !a.ModTime.Equal(b.ModTime) {
				t.Fatalf("entry %d changed in a round trip: %+v, then %+v", i, a, b)
			}
		}
	})
}
