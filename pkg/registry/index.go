package registry

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// IndexEntry is one manifest of a manifest list: where it is and how the
// list describes it.
type IndexEntry struct {
	// Source is the manifest's digest reference, "host/repo@sha256:...".
	Source string `json:"source"`
	// Descriptor has the manifest's media type, digest and size, and the
	// platform and annotations the list gives it.
	Descriptor v1.Descriptor `json:"descriptor"`
}

// IndexFormat is the media type of a pushed manifest list.
type IndexFormat string

const (
	// FormatAuto is a Docker manifest list when every entry is a Docker
	// image manifest, an OCI index otherwise.
	FormatAuto   IndexFormat = ""
	FormatOCI    IndexFormat = "oci"
	FormatDocker IndexFormat = "docker"
)

// ParseIndexFormat parses "oci", "docker" or "" (auto).
func ParseIndexFormat(s string) (IndexFormat, error) {
	switch f := IndexFormat(s); f {
	case FormatAuto, FormatOCI, FormatDocker:
		return f, nil
	}
	return "", fmt.Errorf("invalid manifest list format %q: use oci or docker", s)
}

// ResolveEntries resolves source, an image or an index, to the manifests a
// list made from it holds: an image is one entry whose platform is read
// from its config; an index gives each of its images with the platform it
// lists (attestation manifests, "unknown/unknown", are left out: they
// describe the source index, not the new list).
func (c *Client) ResolveEntries(ctx context.Context, source string) ([]IndexEntry, error) {
	const op = "reading"
	ref, err := c.parseReference(source, pull)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", op, source, err)
	}
	desc, err := remote.Get(ref, c.remoteOptions(ctx, ref.Context().Registry, pull)...)
	if err != nil {
		return nil, c.explainRef(op, ref, pull, err)
	}
	repo := ref.Context()
	if !desc.MediaType.IsIndex() {
		img, err := desc.Image()
		if err != nil {
			return nil, c.explainRef(op, ref, pull, err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			return nil, c.explainRef(op, ref, pull, err)
		}
		p := cfg.Platform()
		if p == nil || p.OS == "" || p.Architecture == "" {
			return nil, fmt.Errorf("%s %q: its config names no platform (os and architecture): give one with `kiln manifest annotate`", op, ref.Name())
		}
		d := desc.Descriptor
		d.Platform = p
		return []IndexEntry{{Source: repo.Digest(d.Digest.String()).Name(), Descriptor: d}}, nil
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		return nil, c.explainRef(op, ref, pull, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, c.explainRef(op, ref, pull, err)
	}
	var entries []IndexEntry
	for _, d := range im.Manifests {
		if d.Platform == nil || d.Platform.OS == "unknown" {
			continue
		}
		d.ArtifactType, d.Data = "", nil
		entries = append(entries, IndexEntry{Source: repo.Digest(d.Digest.String()).Name(), Descriptor: d})
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("%s %q: the index lists no image with a platform", op, ref.Name())
	}
	return entries, nil
}

// PushIndex writes a manifest list of entries to target (a tag) and
// returns its digest reference. Entries from other repositories are copied
// into target's repository first (their blobs mounted when in the same
// registry); the list goes last, by digest, and the tag after it, so the
// tag never points at a partial push.
func (c *Client) PushIndex(ctx context.Context, target string, entries []IndexEntry, format IndexFormat) (name.Digest, error) {
	ref, err := c.parseReference(target, push)
	if err != nil {
		return name.Digest{}, fmt.Errorf("pushing the manifest list %q: %w", target, err)
	}
	tag, ok := ref.(name.Tag)
	if !ok {
		return name.Digest{}, fmt.Errorf("pushing the manifest list %q: the target is a tag, not a digest", target)
	}
	idx, err := c.buildIndex(ctx, entries, format)
	if err != nil {
		return name.Digest{}, fmt.Errorf("pushing the manifest list %q: %w", tag.Name(), err)
	}
	digest, err := idx.Digest()
	if err != nil {
		return name.Digest{}, err
	}
	byDigest := tag.Context().Digest(digest.String())
	sent, err := c.pushByDigest(ctx, idx, byDigest)
	if err != nil {
		return name.Digest{}, c.explainRef("pushing the manifest list", tag, push, err)
	}
	if err := c.setTag(ctx, idx, tag, digest, sent); err != nil {
		return name.Digest{}, err
	}
	return byDigest, nil
}

// buildIndex assembles the list, its manifests fetched lazily from their
// sources.
func (c *Client) buildIndex(ctx context.Context, entries []IndexEntry, format IndexFormat) (v1.ImageIndex, error) {
	if len(entries) == 0 {
		return nil, fmt.Errorf("no manifests to list")
	}
	mediaType := types.DockerManifestList
	if format == FormatOCI {
		mediaType = types.OCIImageIndex
	}
	platforms := map[string]string{}
	var adds []mutate.IndexAddendum
	for _, e := range entries {
		d := e.Descriptor
		if d.Platform == nil {
			return nil, fmt.Errorf("%q has no platform: give one with `kiln manifest annotate`", e.Source)
		}
		p := NormalizePlatform(*d.Platform).String()
		if other, dup := platforms[p]; dup && other != d.Digest.String() {
			return nil, fmt.Errorf("two manifests for %s: %q and %q", p, platforms[p], e.Source)
		}
		platforms[p] = d.Digest.String()
		if d.MediaType != types.DockerManifestSchema2 && d.MediaType != types.DockerManifestList {
			switch format {
			case FormatDocker:
				return nil, fmt.Errorf("%q is a %s: a Docker manifest list holds only Docker manifests; use the OCI format", e.Source, d.MediaType)
			case FormatAuto:
				mediaType = types.OCIImageIndex
			}
		}
		ref, err := c.parseReference(e.Source, pull)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", e.Source, err)
		}
		desc, err := remote.Get(ref, c.remoteOptions(ctx, ref.Context().Registry, pull)...)
		if err != nil {
			return nil, c.explainRef("reading", ref, pull, err)
		}
		var add mutate.Appendable
		if desc.MediaType.IsIndex() {
			add, err = desc.ImageIndex()
		} else {
			add, err = desc.Image()
		}
		if err != nil {
			return nil, c.explainRef("reading", ref, pull, err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: add, Descriptor: v1.Descriptor{
			MediaType:   desc.MediaType,
			Digest:      desc.Digest,
			Size:        desc.Size,
			Platform:    d.Platform,
			Annotations: d.Annotations,
		}})
	}
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, mediaType), adds...), nil
}
