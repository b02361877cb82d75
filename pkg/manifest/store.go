package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/pkg/registry"
)

// List is a manifest list being assembled.
type List struct {
	// Target is the tag the list is pushed to, as name.Reference.Name
	// spells it.
	Target  string  `json:"target"`
	Entries []Entry `json:"entries"`
}

// Entry is one manifest of a list.
type Entry struct {
	// From is the source it was added from, as name.Reference.Name
	// spells it: an image, or an index that gave several entries.
	From string `json:"from"`
	registry.IndexEntry
}

// Add adds entries, replacing those with the same digest.
func (l *List) Add(entries ...Entry) {
	for _, e := range entries {
		replaced := false
		for i := range l.Entries {
			if l.Entries[i].Descriptor.Digest == e.Descriptor.Digest {
				l.Entries[i], replaced = e, true
			}
		}
		if !replaced {
			l.Entries = append(l.Entries, e)
		}
	}
}

// IndexEntries are the list's manifests, in order.
func (l *List) IndexEntries() []registry.IndexEntry {
	out := make([]registry.IndexEntry, len(l.Entries))
	for i, e := range l.Entries {
		out[i] = e.IndexEntry
	}
	return out
}

// Annotate updates the platform of the entry added from source (or whose
// digest reference is source) with the non-empty fields of p. A source
// that gave several entries (an index) is ambiguous: its entries are
// annotated by digest reference.
func (l *List) Annotate(source string, p v1.Platform) error {
	var matches []int
	for i, e := range l.Entries {
		if e.From == source || e.Source == source {
			matches = append(matches, i)
		}
	}
	switch len(matches) {
	case 0:
		var known []string
		for _, e := range l.Entries {
			known = append(known, fmt.Sprintf("%q", e.From))
		}
		return fmt.Errorf("manifest list %q has no entry from %q (it has %s)", l.Target, source, strings.Join(known, ", "))
	case 1:
	default:
		var refs []string
		for _, i := range matches {
			refs = append(refs, fmt.Sprintf("%q", l.Entries[i].Source))
		}
		return fmt.Errorf("%q gave %d entries of manifest list %q: annotate one by its digest reference: %s", source, len(matches), l.Target, strings.Join(refs, ", "))
	}
	e := &l.Entries[matches[0]]
	platform := v1.Platform{}
	if e.Descriptor.Platform != nil {
		platform = *e.Descriptor.Platform
	}
	if p.OS != "" {
		platform.OS = p.OS
	}
	if p.Architecture != "" {
		platform.Architecture = p.Architecture
	}
	if p.Variant != "" {
		platform.Variant = p.Variant
	}
	if p.OSVersion != "" {
		platform.OSVersion = p.OSVersion
	}
	if len(p.OSFeatures) > 0 {
		platform.OSFeatures = p.OSFeatures
	}
	e.Descriptor.Platform = &platform
	return nil
}

// Store keeps lists in a directory, one file each.
type Store struct {
	dir string
}

// NewStore keeps lists in dir, created on the first Save.
func NewStore(dir string) *Store {
	return &Store{dir: dir}
}

// DefaultDir is where lists are kept for the docker config file at
// configPath: "kiln/manifests" beside it, as docker keeps its own in
// "manifests".
func DefaultDir(configPath string) string {
	return filepath.Join(filepath.Dir(configPath), "kiln", "manifests")
}

// ErrNoList is the error Load returns when no list is kept for a target.
var ErrNoList = errors.New("no such manifest list")

func (s *Store) path(target string) string {
	return filepath.Join(s.dir, url.PathEscape(target)+".json")
}

// Load returns the list for target; the error wraps ErrNoList when there
// is none.
func (s *Store) Load(target string) (*List, error) {
	data, err := os.ReadFile(s.path(target))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("manifest list %q: %w (create it with `kiln manifest create`)", target, ErrNoList)
	}
	if err != nil {
		return nil, fmt.Errorf("reading manifest list %q: %w", target, err)
	}
	var l List
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, fmt.Errorf("reading manifest list %q from %q: %w", target, s.path(target), err)
	}
	return &l, nil
}

// Save writes l, replacing the previous version at once.
func (s *Store) Save(l *List) error {
	data, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("saving manifest list %q: %w", l.Target, err)
	}
	tmp, err := os.CreateTemp(s.dir, ".list-*")
	if err != nil {
		return fmt.Errorf("saving manifest list %q: %w", l.Target, err)
	}
	_, err = tmp.Write(append(data, '\n'))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), s.path(l.Target))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("saving manifest list %q: %w", l.Target, err)
	}
	return nil
}

// Remove deletes the list for target; the error wraps ErrNoList when
// there is none.
func (s *Store) Remove(target string) error {
	err := os.Remove(s.path(target))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("manifest list %q: %w (in %q)", target, ErrNoList, s.dir)
	case err != nil:
		return fmt.Errorf("removing manifest list %q: %w", target, err)
	}
	return nil
}
