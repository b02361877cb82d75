package output

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/sirupsen/logrus"
)

// Pusher pushes an image to registry destinations; registry.Client is one.
type Pusher interface {
	Push(ctx context.Context, img v1.Image, destinations []string) ([]name.Digest, error)
}

// Spec says where the image goes.
type Spec struct {
	Destinations []string // image references; pushed unless NoPush
	NoPush       bool
	TarPath      string // docker save format, tagged with the destinations
	OCILayout    string // an OCI image layout directory
	// DigestFile receives the image digest ("sha256:..."),
	// ImageNameWithDigestFile one "repo@sha256:..." line per destination and
	// ImageNameTagWithDigestFile one "repo:tag@sha256:..." line per destination.
	DigestFile                 string
	ImageNameWithDigestFile    string
	ImageNameTagWithDigestFile string
}

// Validate checks the spec before a build starts, so a bad destination fails
// in a second rather than after the build.
func (s *Spec) Validate() error {
	if len(s.Destinations) == 0 && !s.NoPush && s.TarPath == "" && s.OCILayout == "" {
		return errors.New("no destination: give --destination, or --no-push (optionally with --tar-path or --oci-layout-path)")
	}
	if s.TarPath != "" && len(s.Destinations) == 0 {
		return errors.New("--tar-path needs a --destination to name the image inside the tarball")
	}
	for _, d := range s.Destinations {
		if _, err := name.ParseReference(d, name.WeakValidation); err != nil {
			return fmt.Errorf("invalid destination %q: %w", d, err)
		}
	}
	return nil
}

// Write delivers img as spec says.
func Write(ctx context.Context, img v1.Image, spec *Spec, pusher Pusher, log logrus.FieldLogger) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return fmt.Errorf("computing image digest: %w", err)
	}
	refs := make([]name.Reference, 0, len(spec.Destinations))
	for _, d := range spec.Destinations {
		r, err := name.ParseReference(d, name.WeakValidation)
		if err != nil {
			return fmt.Errorf("invalid destination %q: %w", d, err)
		}
		refs = append(refs, r)
	}
	if spec.TarPath != "" {
		if err := writeTarball(spec.TarPath, img, refs); err != nil {
			return err
		}
		log.Infof("Wrote image tarball %s", spec.TarPath)
	}
	if spec.OCILayout != "" {
		if err := writeLayout(spec.OCILayout, img, refs); err != nil {
			return err
		}
		log.Infof("Wrote OCI layout %s", spec.OCILayout)
	}
	if len(refs) > 0 && !spec.NoPush {
		if pusher == nil {
			return errors.New("pushing needs a registry client")
		}
		if _, err := pusher.Push(ctx, img, spec.Destinations); err != nil {
			return err
		}
	} else if spec.NoPush {
		log.Info("Skipping push (--no-push)")
	}
	return writeDigestFiles(spec, digest, refs)
}

func writeTarball(path string, img v1.Image, refs []name.Reference) error {
	tagged := make(map[name.Reference]v1.Image, len(refs))
	for _, r := range refs {
		if d, ok := r.(name.Digest); ok {
			// A tarball is addressed by tag; keep the repository.
			r = d.Context().Tag("latest")
		}
		tagged[r] = img
	}
	return atomicWrite(path, func(tmp string) error {
		if err := tarball.MultiRefWriteToFile(tmp, tagged); err != nil {
			return fmt.Errorf("writing tarball %q: %w", path, err)
		}
		return nil
	})
}

func writeLayout(dir string, img v1.Image, refs []name.Reference) error {
	p, err := layout.FromPath(dir)
	if err != nil {
		if entries, rerr := os.ReadDir(dir); rerr == nil && len(entries) > 0 {
			return fmt.Errorf("--oci-layout-path %q exists and is not an OCI layout", dir)
		}
		if p, err = layout.Write(dir, empty.Index); err != nil {
			return fmt.Errorf("creating OCI layout %q: %w", dir, err)
		}
	}
	var opts []layout.Option
	for _, r := range refs {
		if t, ok := r.(name.Tag); ok {
			opts = append(opts, layout.WithAnnotations(map[string]string{
				"org.opencontainers.image.ref.name": t.TagStr(),
			}))
			break
		}
	}
	if err := p.AppendImage(img, opts...); err != nil {
		return fmt.Errorf("writing OCI layout %q: %w", dir, err)
	}
	return nil
}

func writeDigestFiles(spec *Spec, digest v1.Hash, refs []name.Reference) error {
	if spec.DigestFile != "" {
		if err := writeFile(spec.DigestFile, digest.String()); err != nil {
			return err
		}
	}
	var withDigest, withTag []string
	for _, r := range refs {
		repo := r.Context().Name()
		withDigest = append(withDigest, repo+"@"+digest.String())
		tag := "latest"
		if t, ok := r.(name.Tag); ok {
			tag = t.TagStr()
		}
		withTag = append(withTag, repo+":"+tag+"@"+digest.String())
	}
	if spec.ImageNameWithDigestFile != "" {
		if err := writeFile(spec.ImageNameWithDigestFile, strings.Join(withDigest, "\n")+"\n"); err != nil {
			return err
		}
	}
	if spec.ImageNameTagWithDigestFile != "" {
		if err := writeFile(spec.ImageNameTagWithDigestFile, strings.Join(withTag, "\n")+"\n"); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(path, content string) error {
	return atomicWrite(path, func(tmp string) error {
		return os.WriteFile(tmp, []byte(content), 0o644)
	})
}

// atomicWrite lets write fill a temporary file next to path, then renames it
// over path. Where that cannot be done and path already exists — a file
// bind-mounted into a container, like Kubernetes' /dev/termination-log (the
// kaniko idiom --digest-file=/dev/termination-log), or a writable file in a
// read-only directory — it is written in place instead.
func atomicWrite(path string, write func(tmp string) error) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		if exists(path) {
			return write(path)
		}
		return fmt.Errorf("writing %q: %w", path, err)
	}
	tmp := f.Name()
	f.Close()
	if err := write(tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		if errors.Is(err, syscall.EBUSY) {
			// path is a mount point: it cannot be replaced, only written.
			return write(path)
		}
		return fmt.Errorf("writing %q: %w", path, err)
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
