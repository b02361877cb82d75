package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func layoutCommand(args []string) error {
	fs := flag.NewFlagSet("layout", flag.ContinueOnError)
	dir := fs.String("dir", "", "OCI layout directory (created if missing)")
	insecure := fs.Bool("insecure", false, "reach the registry over plain HTTP (a local staging registry)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || fs.NArg() == 0 {
		return errors.New("usage: layout -dir DIR [-insecure] REF=NAME...")
	}
	var opts []name.Option
	if *insecure {
		opts = append(opts, name.Insecure)
	}
	p, err := layout.FromPath(*dir)
	if err != nil {
		if p, err = layout.Write(*dir, empty.Index); err != nil {
			return fmt.Errorf("creating OCI layout %q: %w", *dir, err)
		}
	}
	for _, arg := range fs.Args() {
		src, refName, ok := strings.Cut(arg, "=")
		if !ok || src == "" || refName == "" {
			return fmt.Errorf("%q: want REF=NAME", arg)
		}
		if err := copyToLayout(p, src, refName, opts); err != nil {
			return err
		}
	}
	return nil
}

// copyToLayout appends the image or index src to the layout, named
// refName.
func copyToLayout(p layout.Path, src, refName string, opts []name.Option) error {
	ref, err := name.ParseReference(src, opts...)
	if err != nil {
		return fmt.Errorf("invalid reference %q: %w", src, err)
	}
	desc, err := remote.Get(ref)
	if err != nil {
		return fmt.Errorf("reading %q: %w", src, err)
	}
	annotations := layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": refName})
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return fmt.Errorf("reading %q: %w", src, err)
		}
		if err := p.AppendIndex(idx, annotations); err != nil {
			return fmt.Errorf("writing %q into OCI layout %q: %w", src, string(p), err)
		}
		return nil
	}
	img, err := desc.Image()
	if err != nil {
		return fmt.Errorf("reading %q: %w", src, err)
	}
	if err := p.AppendImage(img, annotations); err != nil {
		return fmt.Errorf("writing %q into OCI layout %q: %w", src, string(p), err)
	}
	return nil
}
