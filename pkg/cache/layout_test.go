package cache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func randomLayer(t *testing.T) v1.Layer {
	t.Helper()
	l, err := random.Layer(4096, types.DockerLayer)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLayoutStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "nothing"); !errors.Is(err, ErrMiss) {
		t.Errorf("missing key: %v", err)
	}
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	l := randomLayer(t)
	if err := s.Put(ctx, "k1", &Entry{Layer: l, Created: created}); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "empty", &Entry{Created: created}); err != nil {
		t.Fatal(err)
	}
	e, err := s.Get(ctx, "k1")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := l.Digest()
	wantDiff, _ := l.DiffID()
	got, _ := e.Layer.Digest()
	gotDiff, _ := e.Layer.DiffID()
	if got != want || gotDiff != wantDiff || !e.Created.Equal(created) {
		t.Errorf("entry: layer %s/%s, created %v", got, gotDiff, e.Created)
	}
	if mt, _ := e.Layer.MediaType(); mt != types.DockerLayer {
		t.Errorf("media type %s", mt)
	}
	if e, err := s.Get(ctx, "empty"); err != nil || e.Layer != nil {
		t.Errorf("empty entry: %+v, %v", e, err)
	}
	// The store is an OCI layout other tools read.
	if _, err := layout.ImageIndexFromPath(dir); err != nil {
		t.Errorf("not an OCI layout: %v", err)
	}

	// TTL.
	if _, err := Lookup(ctx, s, "k1", time.Hour, created.Add(2*time.Hour)); !errors.Is(err, ErrMiss) {
		t.Errorf("an expired entry was served: %v", err)
	}
	if _, err := Lookup(ctx, s, "k1", time.Hour, created.Add(time.Minute)); err != nil {
		t.Errorf("a fresh entry: %v", err)
	}

	// A corrupt blob, even of the same size, is a miss.
	blob := filepath.Join(dir, "blobs", want.Algorithm, want.Hex)
	data, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(blob, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "k1"); !errors.Is(err, ErrMiss) {
		t.Errorf("a corrupt blob was served: %v", err)
	}
	os.Remove(blob)
	if _, err := s.Get(ctx, "k1"); !errors.Is(err, ErrMiss) {
		t.Errorf("a missing blob was served: %v", err)
	}
	// Writing the entry again mends it.
	if err := s.Put(ctx, "k1", &Entry{Layer: l, Created: created}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "k1"); err != nil {
		t.Errorf("after a rewrite: %v", err)
	}
}

func TestLayoutStoreConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	l := randomLayer(t)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each writer opens the store on its own, as separate
			// builds would; half of them write the same key.
			s, err := OpenLayout(dir)
			if err != nil {
				errs <- err
				return
			}
			key := fmt.Sprintf("k%d", i)
			if i%2 == 0 {
				key = "shared"
			}
			errs <- s.Put(ctx, key, &Entry{Layer: l, Created: time.Now()})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	s, _ := OpenLayout(dir)
	for _, k := range []string{"shared", "k1", "k3", "k5", "k7"} {
		if _, err := s.Get(ctx, k); err != nil {
			t.Errorf("%s: %v", k, err)
		}
	}
	idx, err := s.readIndex()
	if err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 5 {
		t.Errorf("index has %d entries, want 5", len(idx.Manifests))
	}
}
