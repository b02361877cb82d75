package layerstore

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/sirupsen/logrus/hooks/test"
)

func tarLayer(t *testing.T, files map[string]string) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, data := range files {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
		io.WriteString(tw, data)
	}
	tw.Close()
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// untar is a minimal extraction for the tests: regular files only.
func untar(calls *atomic.Int32) Extract {
	return func(_ context.Context, dir string, r io.Reader) error {
		calls.Add(1)
		tr := tar.NewReader(r)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			data, _ := io.ReadAll(tr)
			if err := os.WriteFile(filepath.Join(dir, h.Name), data, 0o644); err != nil {
				return err
			}
		}
	}
}

func TestGetExtractsOnce(t *testing.T) {
	dir := t.TempDir()
	log, _ := test.NewNullLogger()
	l := tarLayer(t, map[string]string{"a": "A"})
	var calls atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each its own Store, as separate builds have.
			s, err := Open(dir, 0, log)
			if err != nil {
				t.Error(err)
				return
			}
			h, err := s.Get(context.Background(), l, untar(&calls))
			if err != nil {
				t.Error(err)
				return
			}
			defer h.Release()
			if data, _ := os.ReadFile(filepath.Join(h.Dir, "a")); string(data) != "A" {
				t.Errorf("layer content %q", data)
			}
		}()
	}
	wg.Wait()
	if calls.Load() != 1 {
		t.Errorf("extracted %d times", calls.Load())
	}
}

// lyingLayer claims a diffID its content does not have.
type lyingLayer struct{ v1.Layer }

func (lyingLayer) DiffID() (v1.Hash, error) {
	return v1.NewHash("sha256:" + strings.Repeat("ab", 32))
}

func TestGetChecksTheDiffID(t *testing.T) {
	log, _ := test.NewNullLogger()
	s, _ := Open(t.TempDir(), 0, log)
	var calls atomic.Int32
	_, err := s.Get(context.Background(), lyingLayer{tarLayer(t, map[string]string{"a": "A"})}, untar(&calls))
	if err == nil || !strings.Contains(err.Error(), "the content's digest is") {
		t.Fatalf("err = %v", err)
	}
	entries, _ := os.ReadDir(s.dir)
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".lock") && !strings.HasSuffix(e.Name(), ".use") {
			t.Errorf("left: %s", e.Name())
		}
	}
}

func TestTrimLeastRecentlyUsedNotHeld(t *testing.T) {
	log, _ := test.NewNullLogger()
	s, _ := Open(t.TempDir(), 0, log)
	clock := time.Unix(1000, 0)
	s.now = func() time.Time { clock = clock.Add(time.Minute); return clock }
	var calls atomic.Int32
	var held []*Held
	var names []string
	for _, c := range []string{"old", "middle", "new"} {
		l := tarLayer(t, map[string]string{c: strings.Repeat("x", 5000)})
		h, err := s.Get(context.Background(), l, untar(&calls))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, h)
		names = append(names, filepath.Dir(h.Dir))
	}
	held[1].Release()
	held[2].Release()
	// Each layer is about 6 KiB: a limit of 7 KiB keeps one. The oldest is
	// held, and counts: the two others go, least recently used first.
	s.limit = 7 << 10
	s.Trim()
	for i, want := range []bool{true, false, false} {
		_, err := os.Stat(names[i])
		if got := err == nil; got != want {
			t.Errorf("layer %d present %v, want %v", i, got, want)
		}
	}
	held[0].Release()
	s.Trim()
	if _, err := os.Stat(names[0]); err != nil {
		t.Errorf("the last layer fits the limit and should stay: %v", err)
	}
	s.limit = 1
	s.Trim()
	if _, err := os.Stat(names[0]); err == nil {
		t.Error("a layer over the limit, held by nobody, stayed")
	}
}

// A layer one build uses is found by another, which uses it too.
func TestSharedUse(t *testing.T) {
	log, _ := test.NewNullLogger()
	dir := t.TempDir()
	a, _ := Open(dir, 0, log)
	b, _ := Open(dir, 0, log)
	l := tarLayer(t, map[string]string{"a": "A"})
	var calls atomic.Int32
	ha, err := a.Get(context.Background(), l, untar(&calls))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hb, err := b.Get(ctx, l, untar(&calls))
	if err != nil {
		t.Fatalf("a second user waits for the first: %v", err)
	}
	if calls.Load() != 1 || hb.Extracted {
		t.Errorf("extracted %d times", calls.Load())
	}
	ha.Release()
	hb.Release()
}
