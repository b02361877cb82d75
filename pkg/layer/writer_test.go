package layer

import (
	"archive/tar"
	"crypto/sha256"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

func writeLayer(t *testing.T, opts ...Option) *File {
	t.Helper()
	w, err := NewWriter(t.TempDir(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	body := "hello\n"
	if err := w.WriteHeader(&tar.Header{Name: "dir", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Now(), Uname: "root"}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteHeader(&tar.Header{Name: "dir/f", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body)), ModTime: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(w, body); err != nil {
		t.Fatal(err)
	}
	l, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func sum(t *testing.T, open func() (io.ReadCloser, error)) string {
	t.Helper()
	rc, err := open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("sha256:%x", h.Sum(nil))
}

func TestDigestsMatchContent(t *testing.T) {
	for _, c := range []Compression{Gzip, Zstd} {
		l := writeLayer(t, WithCompression(c, 0))
		d, _ := l.Digest()
		if got := sum(t, l.Compressed); got != d.String() {
			t.Errorf("%s: digest %s, content hashes to %s", c, d, got)
		}
		id, _ := l.DiffID()
		if got := sum(t, l.Uncompressed); got != id.String() {
			t.Errorf("%s: diffID %s, uncompressed content hashes to %s", c, id, got)
		}
		rc, _ := l.Uncompressed()
		tr := tar.NewReader(rc)
		h, err := tr.Next()
		if err != nil || h.Name != "dir" || h.Uname != "" {
			t.Errorf("%s: first entry %+v, %v", c, h, err)
		}
		rc.Close()
	}
}

func TestEpochMakesLayersIdentical(t *testing.T) {
	epoch := time.Unix(0, 0)
	a := writeLayer(t, WithEpoch(epoch))
	time.Sleep(1100 * time.Millisecond) // a different wall-clock second
	b := writeLayer(t, WithEpoch(epoch))
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Fatalf("same content with an epoch gave %s and %s", da, db)
	}
	c := writeLayer(t)
	if dc, _ := c.Digest(); dc == da {
		t.Fatalf("without an epoch the wall-clock mtime should show in the digest")
	}
}

// A layer whose blob cannot be written fails at Commit, leaving no file and
// no goroutine behind.
func TestCommitAfterAWriteErrorLeavesNothing(t *testing.T) {
	payload := mixedPayload(3*parallelThreshold, 14)
	for _, c := range []Compression{Gzip, Zstd, Estargz} {
		before := runtime.NumGoroutine()
		dir := t.TempDir()
		w, err := NewWriter(dir, WithCompression(c, 0))
		if err != nil {
			t.Fatal(err)
		}
		w.file.Close() // as if the disk failed
		if err := w.WriteHeader(&tar.Header{Name: "big", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(payload))}); err != nil {
			t.Fatal(err)
		}
		w.Write(payload) // the error may show here or at Commit
		if _, err := w.Commit(); err == nil {
			t.Errorf("%s: Commit succeeded on a closed file", c)
		}
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			t.Errorf("%s: %d goroutines after a failed Commit, %d before", c, n, before)
		}
		if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) > 0 {
			t.Errorf("%s: a failed Commit left %q", c, left)
		}
	}
}
