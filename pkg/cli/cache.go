package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/pkg/cache"
	"github.com/kiln-build/kiln/pkg/dockerfile"
	"github.com/kiln-build/kiln/pkg/registry"
)

// warmFlags are the flags of `kiln cache warm` (kaniko's warmer).
type warmFlags struct {
	connectionFlags
	images       []string
	dockerfile   string
	buildArgs    []string
	cacheDir     string
	platform     string
	force        bool
	ttl          time.Duration
	mirrors      []string
	registryMaps []string
	insecure     bool
	skipVerify   bool
	retries      int
}

func newCacheCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "Manage the local store of base images (--cache-dir)",
	}
	cmd.AddCommand(newWarmCommand("warm"))
	return cmd
}

// newWarmCommand is `kiln cache warm`, also `kiln warmer` and the binary
// name warmer, as kaniko's.
func newWarmCommand(use string) *cobra.Command {
	f := &warmFlags{}
	cmd := &cobra.Command{
		Use:   use + " [flags]",
		Short: "Store base images in a directory that builds take them from (kaniko's warmer)",
		Long: `Pull images, or every FROM image of a Dockerfile, with all their layers, into the
directory a build reads with --cache-dir. A build takes a base image from there
without contacting the registry when its reference is pinned by digest, or is a
tag fetched within --cache-ttl. Builds may read the directory while it is warmed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runWarm(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringArrayVarP(&f.images, "image", "i", nil, "image to store (repeatable)")
	fl.StringVarP(&f.dockerfile, "dockerfile", "d", "", "store every FROM image of this Dockerfile")
	fl.StringArrayVar(&f.buildArgs, "build-arg", nil, "build argument NAME=VALUE for the Dockerfile's FROM lines (repeatable)")
	fl.StringVarP(&f.cacheDir, "cache-dir", "c", "/cache", "the directory of base images")
	fl.StringVar(&f.platform, "custom-platform", "", "platform OS/ARCH[/VARIANT] of the images (default: this machine's)")
	fl.BoolVarP(&f.force, "force", "f", false, "fetch images again even if the directory holds them")
	fl.DurationVar(&f.ttl, "cache-ttl", 336*time.Hour, "a tag stored longer ago than this is fetched again")
	fl.StringArrayVar(&f.mirrors, "registry-mirror", nil, "HOST[:PORT][/PATH] mirror for Docker Hub images (repeatable)")
	fl.StringArrayVar(&f.registryMaps, "registry-map", nil, "REGISTRY=HOST[:PORT][/PATH] mirror for REGISTRY's images (repeatable)")
	fl.BoolVar(&f.insecure, "insecure-pull", false, "pull over plain HTTP")
	fl.BoolVar(&f.skipVerify, "skip-tls-verify-pull", false, "pull without verifying TLS certificates")
	fl.IntVar(&f.retries, "image-download-retry", registry.DefaultRetries, "retries of a failed pull")
	addConnectionFlags(fl, &f.connectionFlags)
	return cmd
}

func runWarm(cmd *cobra.Command, f *warmFlags) error {
	log := logrus.StandardLogger()
	ctx := cmd.Context()
	refs, err := f.references(ctx)
	if err != nil {
		return err
	}
	if len(refs) == 0 {
		return errors.New("nothing to warm: give --image or --dockerfile")
	}
	platform, err := parsePlatform(f.platform)
	if err != nil {
		return err
	}
	opts, err := f.connectionFlags.options(log)
	if err != nil {
		return err
	}
	opts = append(opts, registry.WithRegistryMirrors(f.mirrors...), registry.WithInsecurePull(f.insecure),
		registry.WithSkipTLSVerifyPull(f.skipVerify), registry.WithPullRetries(f.retries))
	for _, value := range f.registryMaps {
		for _, pair := range strings.Split(value, ";") {
			from, to, ok := strings.Cut(pair, "=")
			if !ok || from == "" || to == "" {
				return fmt.Errorf("invalid --registry-map %q: want REGISTRY=MIRROR", pair)
			}
			opts = append(opts, registry.WithRegistryMap(from, to))
		}
	}
	reg, err := registry.New(opts...)
	if err != nil {
		return err
	}
	store, err := cache.OpenBaseImages(f.cacheDir)
	if err != nil {
		return err
	}
	for _, w := range refs {
		p := platform
		if w.platform != "" {
			if p, err = parsePlatform(w.platform); err != nil {
				return err
			}
		}
		if !f.force && store.Has(w.ref, p, f.ttl, time.Now()) {
			log.Infof("%q (%s) is already in %q", w.ref, p, f.cacheDir)
			continue
		}
		start := time.Now()
		img, err := reg.Pull(ctx, w.ref, p)
		if err != nil {
			return err
		}
		resolved, err := img.Digest()
		if err != nil {
			return err
		}
		if r, err := name.ParseReference(w.ref, name.WeakValidation); err == nil {
			if d, ok := r.(name.Digest); ok {
				// The digest it was pinned to, an index's perhaps.
				if h, err := v1.NewHash(d.DigestStr()); err == nil {
					resolved = h
				}
			}
		}
		if err := store.Put(ctx, w.ref, p, resolved, img, time.Now()); err != nil {
			return fmt.Errorf("storing %q in %q: %w", w.ref, f.cacheDir, err)
		}
		log.Infof("Stored %q (%s) in %q in %s", w.ref, p, f.cacheDir, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// warmRef is an image to warm and the platform its FROM names, if any.
type warmRef struct{ ref, platform string }

// references lists --image, then the FROM images of --dockerfile.
func (f *warmFlags) references(ctx context.Context) ([]warmRef, error) {
	var out []warmRef
	for _, i := range f.images {
		out = append(out, warmRef{ref: i})
	}
	if f.dockerfile == "" {
		return out, nil
	}
	df, _, err := readDockerfile(ctx, f.dockerfile, ".")
	if err != nil {
		return nil, err
	}
	args, err := parseBuildArgs(f.buildArgs)
	if err != nil {
		return nil, err
	}
	platform, err := parsePlatform(f.platform)
	if err != nil {
		return nil, err
	}
	seen := map[warmRef]bool{}
	for i, st := range df.Stages {
		target := st.Name
		if target == "" {
			target = fmt.Sprint(i)
		}
		plan, err := df.Plan(dockerfile.PlanOptions{BuildArgs: args, Target: target, TargetPlatform: platform})
		if err != nil {
			return nil, err
		}
		for _, s := range plan.Stages {
			w := warmRef{ref: s.Base, platform: s.Platform}
			if s.BaseStage != nil || strings.EqualFold(s.Base, "scratch") || seen[w] {
				continue
			}
			seen[w] = true
			out = append(out, w)
		}
	}
	return out, nil
}
