package compression

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

const payload = "the same bytes, however they are wrapped\n"

func TestDecompressEveryFormat(t *testing.T) {
	var gz, xzb, zst bytes.Buffer
	gw := gzip.NewWriter(&gz)
	gw.Write([]byte(payload))
	gw.Close()
	xw, _ := xz.NewWriter(&xzb)
	xw.Write([]byte(payload))
	xw.Close()
	zw, _ := zstd.NewWriter(&zst)
	zw.Write([]byte(payload))
	zw.Close()
	// Go has no bzip2 writer: a fixture made with bzip2(1) from payload.
	bz, err := os.ReadFile("testdata/payload.bz2")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		data []byte
		want Format
	}{
		{gz.Bytes(), Gzip}, {xzb.Bytes(), Xz}, {zst.Bytes(), Zstd}, {bz, Bzip2}, {[]byte(payload), None},
	} {
		rc, f, err := Decompress(bytes.NewReader(c.data))
		if err != nil || f != c.want {
			t.Fatalf("%s: format %s, %v", c.want, f, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || string(got) != payload {
			t.Errorf("%s: %q, %v", c.want, got, err)
		}
	}
}

// A tar whose first file name starts with gzip's magic is still a tar.
func TestTarMagicWins(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "\x1f\x8bname", Mode: 0o644, Typeflag: tar.TypeReg, Format: tar.FormatUSTAR})
	tw.Close()
	if f := Detect(buf.Bytes()); f != None {
		t.Fatalf("detected %s", f)
	}
}

func TestEmptyStream(t *testing.T) {
	rc, f, err := Decompress(bytes.NewReader(nil))
	if err != nil || f != None {
		t.Fatalf("%s, %v", f, err)
	}
	if b, _ := io.ReadAll(rc); len(b) != 0 {
		t.Fatalf("read %q", b)
	}
}
