package cache_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"

	"github.com/kiln-build/kiln/pkg/cache"
)

// Every field a tree view reads survives the trip through a headers entry,
// and the entry holds no file content.
func TestHeadersRoundTrip(t *testing.T) {
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	long := strings.Repeat("deep/", 40) + "file"
	in := []*tar.Header{
		{Typeflag: tar.TypeDir, Name: "etc/", Mode: 0o755, ModTime: mtime},
		{Typeflag: tar.TypeReg, Name: "etc/passwd", Mode: 0o644, Size: 1234, Uid: 0, Gid: 42, Uname: "root", Gname: "shadow", ModTime: mtime},
		{Typeflag: tar.TypeReg, Name: long, Mode: 0o4755, Size: 1 << 33, Uid: 70000, Gid: 70001, ModTime: mtime,
			PAXRecords: map[string]string{"SCHILY.xattr.security.capability": "\x01\x00\x00\x02"}},
		{Typeflag: tar.TypeLink, Name: "etc/hard", Linkname: "etc/passwd", Mode: 0o644, ModTime: mtime},
		{Typeflag: tar.TypeSymlink, Name: "bin", Linkname: "usr/bin", Mode: 0o777, ModTime: mtime},
		{Typeflag: tar.TypeChar, Name: "dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3, ModTime: mtime},
		{Typeflag: tar.TypeReg, Name: "etc/.wh.gone", Mode: 0o600, ModTime: mtime},
		{Typeflag: tar.TypeReg, Name: "empty", Mode: 0o600, ModTime: mtime},
		{Typeflag: tar.TypeReg, Name: "reproducible", Mode: 0o644, Size: 3, ModTime: time.Unix(0, 0)},
		{Typeflag: tar.TypeDir, Name: "undated/", Mode: 0o755},
	}
	l, err := cache.HeadersLayer(in)
	if err != nil {
		t.Fatal(err)
	}
	if size, _ := l.Size(); size > 2048 {
		t.Errorf("the headers entry is %d bytes: file content got in", size)
	}
	out, err := cache.ReadHeaders(l)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("%d headers back, want %d", len(out), len(in))
	}
	for i, want := range in {
		got := out[i]
		if got.Typeflag != want.Typeflag || got.Name != want.Name || got.Linkname != want.Linkname ||
			got.Mode != want.Mode || got.Size != want.Size || got.Uid != want.Uid || got.Gid != want.Gid ||
			got.Uname != want.Uname || got.Gname != want.Gname || !got.ModTime.Equal(want.ModTime) ||
			got.Devmajor != want.Devmajor || got.Devminor != want.Devminor {
			t.Errorf("header %d:\n got %+v\nwant %+v", i, got, want)
		}
		for k, v := range want.PAXRecords {
			if got.PAXRecords[k] != v {
				t.Errorf("%s: PAX record %s = %q, want %q", want.Name, k, got.PAXRecords[k], v)
			}
		}
	}
	if cache.HeadersKey(mustHash(t, "sha256:"+strings.Repeat("a", 64))) == cache.HeadersKey(mustHash(t, "sha256:"+strings.Repeat("b", 64))) {
		t.Error("two layers share a headers key")
	}
}

// A blob that is not a headers entry (a layer, bad JSON, an entry without
// a name or with a negative size) is a corrupt entry, never trusted.
func TestReadHeadersRefusesOtherBlobs(t *testing.T) {
	gz := func(s string) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		io.WriteString(zw, s)
		zw.Close()
		return buf.Bytes()
	}
	for name, l := range map[string]v1.Layer{
		"a tar layer":   static.NewLayer(gz("not a tar, but labelled as one"), types.OCILayer),
		"not gzip":      static.NewLayer([]byte(`{"t":48,"n":"a","m":420}`), cache.HeadersMediaType),
		"bad json":      static.NewLayer(gz(`{"t":48,"n":"a"`), cache.HeadersMediaType),
		"no name":       static.NewLayer(gz(`{"t":48,"m":420}`), cache.HeadersMediaType),
		"negative size": static.NewLayer(gz(`{"t":48,"n":"a","s":-1}`), cache.HeadersMediaType),
		"huge line":     static.NewLayer(gz(`{"t":48,"n":"`+strings.Repeat("a", 2<<20)+`"}`), cache.HeadersMediaType),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := cache.ReadHeaders(l); !errors.Is(err, cache.ErrCorrupt) || !errors.Is(err, cache.ErrMiss) {
				t.Errorf("got %v, want a corrupt entry", err)
			}
		})
	}
}

// A list longer in bytes than the bound is corrupt, however few entries
// it has and however short its lines.
func TestReadHeadersBoundsBytes(t *testing.T) {
	var hs []*tar.Header
	for i := 0; i < 100; i++ {
		hs = append(hs, &tar.Header{Typeflag: tar.TypeReg, Name: strings.Repeat("n", 100), Mode: 0o644})
	}
	l, err := cache.HeadersLayer(hs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cache.ReadHeaders(l); err != nil {
		t.Fatalf("within the bound: %v", err)
	}
	defer cache.SetMaxHeadersBytes(5000)()
	if _, err := cache.ReadHeaders(l); !errors.Is(err, cache.ErrCorrupt) {
		t.Errorf("over the bound: %v, want a corrupt entry", err)
	}
}

func mustHash(t *testing.T, s string) v1.Hash {
	t.Helper()
	h, err := v1.NewHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
