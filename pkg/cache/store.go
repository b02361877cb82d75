package cache

import (
	"context"
	"errors"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Entry is what a step produced.
type Entry struct {
	// Layer is the step's layer; nil when the step changed no file.
	Layer v1.Layer
	// Created is when the entry was written.
	Created time.Time
}

// Store keeps entries by key.
type Store interface {
	// Get returns the entry of key. A missing, unreadable or corrupt entry
	// is an error wrapping ErrMiss that says why.
	Get(ctx context.Context, key string) (*Entry, error)
	// Put writes the entry of key. Writing a key that another build writes
	// at the same time succeeds for both.
	Put(ctx context.Context, key string, e *Entry) error
	// String names the store for logs and errors.
	String() string
}

// ErrMiss is wrapped by every lookup that found nothing usable.
var ErrMiss = errors.New("cache miss")

// ErrCorrupt is wrapped (with ErrMiss) by a lookup that found an entry
// whose manifest, config or blobs are damaged: worth a warning.
var ErrCorrupt = errors.New("corrupt cache entry")

// miss explains a miss.
func miss(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMiss, fmt.Sprintf(format, args...))
}

// corrupt explains a miss on a damaged entry.
func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w (%w): %s", ErrMiss, ErrCorrupt, fmt.Sprintf(format, args...))
}

// Lookup returns the entry of key in s if it is younger than ttl (0: no
// limit). A missing, expired or damaged entry is an error wrapping ErrMiss;
// any other error is the store's trouble (unreachable, refusing), which
// the caller may take as a miss too.
func Lookup(ctx context.Context, s Store, key string, ttl time.Duration, now time.Time) (*Entry, error) {
	e, err := s.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	if ttl > 0 && now.Sub(e.Created) > ttl {
		return nil, miss("the entry is %s old, older than --cache-ttl %s", now.Sub(e.Created).Round(time.Minute), ttl)
	}
	return e, nil
}

// keyLabel carries an entry's key in its config, for people reading the
// cache repository.
const keyLabel = "dev.kiln.cache.key"

// EntryImage encodes an entry as an image: the layer, if any, and a
// config that records the key and when the entry was written. Registry and
// layout stores hold these images.
func EntryImage(key string, e *Entry) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	if e.Layer != nil {
		mt, err := e.Layer.MediaType()
		if err != nil {
			return nil, err
		}
		if mt == types.DockerLayer {
			img = mutate.MediaType(empty.Image, types.DockerManifestSchema2)
		}
		if img, err = mutate.Append(img, mutate.Addendum{Layer: e.Layer, MediaType: mt}); err != nil {
			return nil, err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: e.Created.UTC()}
	cf.OS, cf.Architecture = "linux", "unknown"
	cf.Config.Labels = map[string]string{keyLabel: key}
	return mutate.ConfigFile(img, cf)
}

// EntryFromImage decodes an entry image written for key.
func EntryFromImage(key string, img v1.Image) (*Entry, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, corrupt("config: %v", err)
	}
	if cf.Config.Labels[keyLabel] != key {
		return nil, corrupt("the entry is labelled %q, not the key looked up", cf.Config.Labels[keyLabel])
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, corrupt("layers: %v", err)
	}
	e := &Entry{Created: cf.Created.Time}
	switch len(layers) {
	case 0:
	case 1:
		e.Layer = layers[0]
	default:
		return nil, corrupt("the entry has %d layers", len(layers))
	}
	return e, nil
}
