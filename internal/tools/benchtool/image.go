package main

import (
	"archive/tar"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// The bench registry is plain HTTP on loopback.
var refOpts = []name.Option{name.Insecure, name.StrictValidation}

// imageInfo is what a build pushed: recorded so that runs can be compared
// (a warm build should give the cold build's layers) and sizes reported.
type imageInfo struct {
	Ref       string   `json:"ref"`
	Digest    string   `json:"digest"`
	MediaType string   `json:"media_type"`
	Layers    []string `json:"layers"`
	Bytes     int64    `json:"compressed_bytes"`
}

func lookupImage(ref string) (*imageInfo, error) {
	r, err := name.ParseReference(ref, refOpts...)
	if err != nil {
		return nil, err
	}
	img, err := remote.Image(r)
	if err != nil {
		return nil, fmt.Errorf("reading %q: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return nil, err
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	info := &imageInfo{Ref: ref, Digest: d.String(), MediaType: string(m.MediaType)}
	for _, l := range m.Layers {
		info.Layers = append(info.Layers, l.Digest.String())
		info.Bytes += l.Size
	}
	return info, nil
}

// layoutImage is the one image of an OCI layout.
func layoutImage(dir string) (v1.Image, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("layout %q: %w", dir, err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("layout %q: %w", dir, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("layout %q: %w", dir, err)
	}
	if len(im.Manifests) != 1 {
		return nil, fmt.Errorf("layout %q holds %d manifests, want 1", dir, len(im.Manifests))
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		return nil, fmt.Errorf("layout %q: %w", dir, err)
	}
	return img, nil
}

// describeLayoutCmd prints the size of a layout's image: what a builder
// pulls (compressed) and writes (uncompressed, tar entries).
func describeLayoutCmd(args []string) error {
	fs := flag.NewFlagSet("describe", flag.ExitOnError)
	dir := fs.String("layout", "", "OCI image layout directory holding one image")
	fs.Parse(args)
	img, err := layoutImage(*dir)
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	var compressed, uncompressed, entries int64
	for _, l := range layers {
		size, err := l.Size()
		if err != nil {
			return err
		}
		compressed += size
		rc, err := l.Uncompressed()
		if err != nil {
			return err
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				rc.Close()
				return fmt.Errorf("layout %q: %w", *dir, err)
			}
			entries++
			uncompressed += h.Size
		}
		rc.Close()
	}
	fmt.Printf("%d MB in %d files and directories, %d layers, %d MB compressed\n",
		uncompressed>>20, entries, len(layers), compressed>>20)
	return nil
}

// pushLayoutCmd pushes the one image of an OCI layout: the cached base
// images go into each run's fresh registry without being rebuilt.
func pushLayoutCmd(args []string) error {
	fs := flag.NewFlagSet("pushlayout", flag.ExitOnError)
	dir := fs.String("layout", "", "OCI image layout directory holding one image")
	ref := fs.String("ref", "", "where to push it")
	fs.Parse(args)
	if *dir == "" || *ref == "" {
		return fmt.Errorf("-layout and -ref are required")
	}
	r, err := name.ParseReference(*ref, refOpts...)
	if err != nil {
		return err
	}
	img, err := layoutImage(*dir)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := remote.Write(r, img); err != nil {
		return fmt.Errorf("pushing %q to %q: %w", *dir, *ref, err)
	}
	d, _ := img.Digest()
	fmt.Printf("pushed %s@%s in %.1fs\n", *ref, d, time.Since(start).Seconds())
	return nil
}
