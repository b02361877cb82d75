package cache

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Remote is what a RegistryStore needs of a registry client;
// *registry.Client is one.
type Remote interface {
	// Fetch returns the image ref names, as it is, layers fetched lazily.
	Fetch(ctx context.Context, ref string) (v1.Image, error)
	// Push writes img under the tag refs name.
	Push(ctx context.Context, img v1.Image, refs []string) ([]name.Digest, error)
}

// NotFound reports whether a Remote's error says the image does not exist
// (as opposed to an unreachable or refusing registry).
type NotFound func(error) bool

// RegistryStore keeps entries as images in a registry repository (kaniko's
// --cache-repo), tagged with their key. Builds on every node share it;
// layers the destination is pushed to are mounted from it, not uploaded
// again.
type RegistryStore struct {
	remote   Remote
	repo     string
	notFound NotFound
}

// NewRegistryStore returns the store in repository repo.
func NewRegistryStore(r Remote, repo string, notFound NotFound) (*RegistryStore, error) {
	if _, err := name.NewRepository(repo, name.WeakValidation); err != nil {
		return nil, fmt.Errorf("invalid --cache-repo %q: %w", repo, err)
	}
	return &RegistryStore{remote: r, repo: repo, notFound: notFound}, nil
}

func (s *RegistryStore) String() string { return s.repo }

func (s *RegistryStore) ref(key string) string { return s.repo + ":" + key }

// Get fetches the entry's manifest and config; its layer is read only if
// the build needs its content.
func (s *RegistryStore) Get(ctx context.Context, key string) (*Entry, error) {
	img, err := s.remote.Fetch(ctx, s.ref(key))
	if err != nil {
		if s.notFound(err) {
			return nil, miss("%s has no entry", s.repo)
		}
		return nil, err
	}
	// A registry keeps the blobs of a tagged manifest: the layer is read
	// (and its digest checked) only if the build needs its content.
	e, err := EntryFromImage(key, img)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.repo, err)
	}
	return e, nil
}

// Put pushes the entry under its key.
func (s *RegistryStore) Put(ctx context.Context, key string, e *Entry) error {
	img, err := EntryImage(key, e)
	if err != nil {
		return err
	}
	_, err = s.remote.Push(ctx, img, []string{s.ref(key)})
	return err
}
