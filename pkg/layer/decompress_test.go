package layer

import (
	"bytes"
	"errors"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/klauspost/compress/gzip"
)

func TestDecompress(t *testing.T) {
	payload := mixedPayload(2*parallelThreshold+777, 5)
	// Two gzip members one after the other, as eStargz writes them.
	var members bytes.Buffer
	for _, part := range [][]byte{payload[:1000], payload[1000:]} {
		g := gzip.NewWriter(&members)
		g.Write(part)
		g.Close()
	}
	for name, blob := range map[string][]byte{
		"gzip":          compress(t, Gzip, 0, payload, 1<<20, 2),
		"gzip members":  members.Bytes(),
		"zstd":          compress(t, Zstd, 0, payload, 1<<20, 2),
		"uncompressed":  payload,
		"small gzip":    compress(t, Gzip, 0, payload[:10], 10, 2),
		"tiny":          payload[:3],
		"empty":         nil,
		"parallel gzip": compress(t, Gzip, 9, payload, 1<<20, 2),
	} {
		want := payload
		switch name {
		case "small gzip":
			want = payload[:10]
		case "tiny":
			want = payload[:3]
		case "empty":
			want = nil
		}
		rc, err := Decompress(bytes.NewReader(blob))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// Small reads, to cross the read-ahead blocks at odd places.
		var got []byte
		buf := make([]byte, 100_003)
		for {
			n, err := rc.Read(buf)
			got = append(got, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		if err := rc.Close(); err != nil {
			t.Errorf("%s: Close: %v", name, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: got %d bytes, want %d (or different content)", name, len(got), len(want))
		}
	}
}

func TestDecompressFindsCorruption(t *testing.T) {
	payload := mixedPayload(parallelThreshold/2, 6)
	good := compress(t, Gzip, 0, payload, 1<<20, 2)
	badCRC := bytes.Clone(good)
	crc := crc32.ChecksumIEEE(payload)
	badCRC[len(badCRC)-8] = byte(crc) ^ 0xff // the trailer's CRC, first byte
	zgood := compress(t, Zstd, 0, payload, 1<<20, 2)
	for name, blob := range map[string][]byte{
		"gzip checksum":  badCRC,
		"gzip truncated": good[:len(good)/2],
		"gzip trailer":   good[:len(good)-4],
		"zstd truncated": zgood[:len(zgood)/2],
	} {
		rc, err := Decompress(bytes.NewReader(blob))
		if err == nil {
			_, err = io.Copy(io.Discard, rc)
			rc.Close()
		}
		if err == nil {
			t.Errorf("%s: read without an error", name)
		}
	}
	_, err := Decompress(errReader{})
	if !errors.Is(err, errBroken) {
		t.Errorf("unreadable blob: error %v", err)
	}
}

var errBroken = errors.New("broken")

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errBroken }

func TestDecompressCloseEarly(t *testing.T) {
	payload := mixedPayload(4*parallelThreshold, 7)
	for _, c := range []Compression{Gzip, Zstd} {
		blob := compress(t, c, 0, payload, 1<<20, 2)
		before := runtime.NumGoroutine()
		for i := 0; i < 3; i++ {
			rc, err := Decompress(bytes.NewReader(blob))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(rc, make([]byte, 100)); err != nil {
				t.Fatal(err)
			}
			rc.Close()
		}
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			t.Errorf("%s: %d goroutines after closing early, %d before", c, n, before)
		}
	}
}

func TestUncompressedOfALayer(t *testing.T) {
	payload := mixedPayload(parallelThreshold+1, 8)
	path := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(path, compress(t, Gzip, 0, payload, 1<<20, 2), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := tarball.LayerFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := Uncompressed(l)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("got %d bytes, want %d", len(got), len(payload))
	}
	if _, err := Uncompressed(missingLayer{l}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a layer whose blob cannot be opened: error %v", err)
	}
}

type missingLayer struct{ v1.Layer }

func (missingLayer) Compressed() (io.ReadCloser, error) { return nil, os.ErrNotExist }
