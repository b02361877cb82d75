package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sirupsen/logrus"

	"github.com/kiln-build/kiln/pkg/buildcontext"
	"github.com/kiln-build/kiln/pkg/cache"
	"github.com/kiln-build/kiln/pkg/dockerfile"
	"github.com/kiln-build/kiln/pkg/executor"
	"github.com/kiln-build/kiln/pkg/layerstore"
	"github.com/kiln-build/kiln/pkg/output"
	"github.com/kiln-build/kiln/pkg/registry"
	"github.com/kiln-build/kiln/pkg/sandbox"
	"github.com/kiln-build/kiln/pkg/workdir"
)

// runBuild runs the build c describes: isolation, work directory, context
// and Dockerfile, registry, executor, output. It returns the image's digest
// once it is built.
func runBuild(ctx context.Context, c *buildConfig, prog *progressOutput, runOut io.Writer, log *logrus.Logger) (image string, err error) {
	for _, n := range c.notes {
		log.Info(n)
	}
	iso := enterIsolation(c, log)
	kilnDir, removeKilnDir, err := prepareKilnDir(c.kilnDir)
	if err != nil {
		return image, err
	}
	defer removeKilnDir()
	work, err := workdir.Start(kilnDir, workdir.WithLogger(log))
	if err != nil {
		return image, err
	}
	defer work.Close()

	opts := append(c.contextOpts, buildcontext.WithWorkDir(work.Dir), buildcontext.WithStdin(os.Stdin))
	bctx, err := buildcontext.Open(ctx, c.contextSpec, opts...)
	if err != nil {
		return image, err
	}
	defer bctx.Close()
	// The git context's credentials are read (gitOptions): no process kiln
	// starts from here on inherits them.
	os.Unsetenv("GIT_PASSWORD")
	os.Unsetenv("GIT_TOKEN")
	plan, err := readPlan(ctx, c, bctx, log)
	if err != nil {
		return image, err
	}
	if iso.err != nil {
		if executor.NeedsRoot(plan, c.singleSnapshot) {
			return image, fmt.Errorf("this Dockerfile has RUN instructions, and RUN cannot be isolated here: %w", iso.err)
		}
		log.Infof("No isolation for RUN is available (%v): fine, this Dockerfile has no RUN", iso.err)
	}

	reg, err := openRegistry(ctx, c, plan, kilnDir, prog, log)
	if err != nil {
		return image, err
	}
	defer reg.Wait()
	store, err := openCache(ctx, c, reg, log)
	if err != nil {
		return image, err
	}
	if c.dryRun {
		return image, dryRun(ctx, plan, reg, c, log)
	}
	run := &buildRun{c: c, iso: iso, kilnDir: kilnDir, work: work, reg: reg, prog: prog, log: log}
	xopts, err := run.executorOptions(ctx, bctx, store, runOut)
	if err != nil {
		return image, err
	}
	b, err := executor.New(plan, xopts...)
	if err != nil {
		return image, err
	}
	defer b.Close()
	return run.build(ctx, b)
}

// isolation is how RUN instructions will be isolated, or why they cannot be.
type isolation struct {
	mode sandbox.Mode
	err  error
}

// enterIsolation decides the isolation before the context is read:
// rootless isolation re-executes kiln in a user namespace, which must
// happen before stdin is consumed. A Dockerfile without RUN needs none, so
// failing to find one only matters once the plan shows RUN instructions.
func enterIsolation(c *buildConfig, log logrus.FieldLogger) isolation {
	mode, reason, err := sandbox.Resolve(c.isolation, c.force)
	if err != nil {
		return isolation{mode: mode, err: err}
	}
	switch {
	case mode == sandbox.ModeRootless:
		// Re-executes kiln in a user namespace; returns in the new process.
		if err := sandbox.EnterUserNamespace(); err != nil {
			return isolation{mode: mode, err: err}
		}
	case mode == sandbox.ModeChroot && c.layerStore > 0:
		// Overlays of the layer store need a mount namespace of kiln's
		// own: re-executes kiln in one; returns in the new process.
		if err := sandbox.EnterMountNamespace(); err != nil {
			log.Infof("Stage roots are directories of their own: %v", err)
		}
	}
	log.Infof("Isolation %s: %s", mode, reason)
	return isolation{mode: mode}
}

// openRegistry opens the registry client with every credential the build
// may need read now, before any RUN, and the variables that held them gone
// from kiln's environment; destinations are checked for push rights.
func openRegistry(ctx context.Context, c *buildConfig, plan *dockerfile.Plan, kilnDir string, prog *progressOutput, log *logrus.Logger) (*registry.Client, error) {
	regOpts, err := registryOptions(c.flags, filepath.Join(kilnDir, "blobs"), log)
	if err != nil {
		return nil, err
	}
	reg, err := registry.New(append(regOpts, registry.WithProgress(prog.sink))...)
	if err != nil {
		return nil, err
	}
	reg.PreloadCredentials(credentialTargets(c, plan))
	registry.ScrubCredentialEnv()
	if !c.flags.noPush && !c.flags.skipPushPermissionCheck {
		if err := reg.CheckPush(ctx, c.output.Destinations); err != nil {
			reg.Wait()
			return nil, err
		}
	}
	return reg, nil
}

// buildRun is what the steps after the plan share.
type buildRun struct {
	c       *buildConfig
	iso     isolation
	kilnDir string
	work    *workdir.Build
	reg     *registry.Client
	prog    *progressOutput
	log     *logrus.Logger
}

// executorOptions turns the build configuration into the executor's options.
func (r *buildRun) executorOptions(ctx context.Context, bctx executor.BuildContext, store cache.Store, runOut io.Writer) ([]executor.Option, error) {
	c := r.c
	var source executor.ImageSource = r.reg
	if c.baseImages != "" {
		images, err := cache.OpenBaseImages(c.baseImages)
		if err != nil {
			return nil, err
		}
		source = &cache.LocalFirst{Images: images, Next: r.reg, TTL: c.cacheTTL, Log: r.log}
	}
	xopts := []executor.Option{
		executor.WithImageSource(source),
		executor.WithBuildContext(bctx),
		executor.WithWorkDir(r.work.Dir),
		executor.WithSecretsDir(r.work.SecretsDir),
		executor.WithPlatform(c.platform()),
		executor.WithCompression(c.compression, c.compressionLevel),
		executor.WithLabels(c.labels),
		executor.WithSingleSnapshot(c.singleSnapshot),
		executor.WithJobs(c.jobs),
		executor.WithMaxLayers(c.maxLayers),
		executor.WithLogger(r.log),
		executor.WithSecrets(c.secrets),
		executor.WithSSH(c.ssh),
		executor.WithRootless(r.iso.mode == sandbox.ModeRootless),
		executor.WithIgnorePaths(c.snapshotIgnores(r.iso.mode)),
		executor.WithRunOutput(runOut),
		executor.WithProgress(r.prog.sink),
		executor.WithLayerPublisher(func(l v1.Layer) {
			if !c.output.NoPush {
				r.reg.Preupload(ctx, c.output.Destinations, l)
			}
		}),
		executor.WithCacheDir(filepath.Join(r.kilnDir, "cache")),
		executor.WithStateDir(filepath.Join(r.kilnDir, "state")),
	}
	if c.epoch != nil {
		xopts = append(xopts, executor.WithReproducible(*c.epoch))
	}
	if store != nil {
		r.prog.report.cache = true
		xopts = append(xopts, executor.WithCache(executor.CacheOptions{Store: store, TTL: c.cacheTTL,
			RunLayers: c.cache.run, CopyLayers: c.cache.copy, Write: c.cache.write}))
	}
	if r.iso.err != nil {
		return xopts, nil
	}
	sb, err := sandbox.New(r.iso.mode, sandbox.WithWorkDir(r.work.Dir), sandbox.WithLogger(r.log))
	if err != nil {
		return nil, err
	}
	xopts = append(xopts, executor.WithSandbox(sb))
	if r.iso.mode == sandbox.ModeChroot && c.layerStore > 0 && sandbox.PrivateMounts() {
		ls, err := layerstore.Open(filepath.Join(r.kilnDir, "layers"), c.layerStore, r.log)
		if err != nil {
			return nil, err
		}
		xopts = append(xopts, executor.WithLayerStore(ls))
	}
	return xopts, nil
}

// build runs the executor and writes the image where the build asks,
// returning its digest.
func (r *buildRun) build(ctx context.Context, b *executor.Builder) (string, error) {
	start := time.Now()
	img, err := b.Build(ctx)
	if err != nil {
		return "", err
	}
	if img, err = output.Convert(img, r.c.format, r.c.annotations); err != nil {
		return "", err
	}
	digest, err := img.Digest()
	if err != nil {
		return "", err
	}
	r.log.Infof("Built image %s in %s", digest, time.Since(start).Round(time.Millisecond))
	return digest.String(), output.Write(ctx, img, &r.c.output, r.reg, r.log)
}

// credentialTargets lists what the build may contact: destinations, the
// cache repository, the images the plan names, mirrors.
func credentialTargets(c *buildConfig, plan *dockerfile.Plan) []string {
	refs := append([]string(nil), c.output.Destinations...)
	if c.cache != nil && c.cache.repo != "" {
		refs = append(refs, c.cache.repo)
	}
	for _, s := range plan.Stages {
		if s.BaseStage == nil && !strings.EqualFold(s.Base, "scratch") {
			refs = append(refs, s.Base)
		}
		for _, src := range s.CopyFrom {
			if src.Image != "" {
				refs = append(refs, src.Image)
			}
		}
		for _, srcs := range s.MountFrom {
			for _, src := range srcs {
				if src.Image != "" {
					refs = append(refs, src.Image)
				}
			}
		}
	}
	for _, m := range c.flags.mirrors {
		refs = append(refs, strings.TrimSuffix(m, "/")+"/library/image")
	}
	for _, value := range c.flags.registryMaps {
		for _, pair := range strings.Split(value, ";") {
			if _, to, ok := strings.Cut(pair, "="); ok {
				refs = append(refs, strings.TrimSuffix(to, "/")+"/image")
			}
		}
	}
	return refs
}

// openCache opens the layer cache of --cache, checking first that kiln may
// write to a registry cache: refused credentials fail the build now, as
// for a destination; an unreachable cache only costs its use.
func openCache(ctx context.Context, c *buildConfig, reg *registry.Client, log logrus.FieldLogger) (cache.Store, error) {
	if c.cache == nil {
		return nil, nil
	}
	if c.cache.layoutDir != "" {
		s, err := cache.OpenLayout(c.cache.layoutDir)
		if err != nil {
			log.Warnf("Layer cache %q cannot be opened, the build goes on without it: %v", "oci:"+c.cache.layoutDir, err)
			return nil, nil
		}
		log.Infof("Layer cache in %s", s)
		return s, nil
	}
	if c.cache.write && !c.flags.skipPushPermissionCheck {
		if err := reg.CheckPush(ctx, []string{c.cache.repo}); err != nil {
			var re *registry.Error
			if errors.As(err, &re) && (re.Kind == registry.KindUnauthorized || re.Kind == registry.KindDenied) {
				return nil, fmt.Errorf("the layer cache repository (--cache-repo): %w; or build with --no-push-cache to only read it", err)
			}
			log.Warnf("Layer cache %q is out of reach, the build goes on without it: %v", c.cache.repo, err)
			return nil, nil
		}
	}
	s, err := cache.NewRegistryStore(reg, c.cache.repo, func(err error) bool {
		var re *registry.Error
		return errors.As(err, &re) && re.Kind == registry.KindNotFound
	})
	if err != nil {
		return nil, err
	}
	log.Infof("Layer cache in %s", s)
	return s, nil
}

// readPlan reads the Dockerfile, applies its .dockerignore to the context
// and plans the build.
func readPlan(ctx context.Context, c *buildConfig, bctx *buildcontext.Context, log logrus.FieldLogger) (*dockerfile.Plan, error) {
	df, dfPath, err := readDockerfile(ctx, c.dockerfile, bctx.Dir())
	if err != nil {
		return nil, err
	}
	if dfPath != "" {
		if err := bctx.LoadIgnore(dfPath); err != nil {
			return nil, err
		}
	}
	for _, w := range df.Warnings {
		log.Warn(w)
	}
	if df.Syntax != "" {
		log.Infof("Ignoring the # syntax=%s directive: kiln has its own Dockerfile frontend", df.Syntax)
	}
	plan, err := df.Plan(c.plan)
	if err != nil {
		return nil, err
	}
	if len(plan.UnusedBuildArgs) > 0 {
		log.Warnf("Build arguments not consumed by any ARG: %s", strings.Join(plan.UnusedBuildArgs, ", "))
	}
	return plan, nil
}

// dryRun resolves every base image of the plan and says what the build
// would start from, without building anything.
func dryRun(ctx context.Context, plan *dockerfile.Plan, reg *registry.Client, c *buildConfig, log logrus.FieldLogger) error {
	for _, s := range plan.Stages {
		label := s.Name
		if label == "" {
			label = fmt.Sprint(s.Index)
		}
		switch {
		case s.BaseStage != nil:
			log.Infof("Stage %s: FROM stage %q, %d instructions", label, s.BaseStage.Name, len(s.Commands))
		case strings.EqualFold(s.Base, "scratch"):
			log.Infof("Stage %s: FROM scratch, %d instructions", label, len(s.Commands))
		default:
			p := c.platform()
			if s.Platform != "" {
				pp, err := parsePlatform(s.Platform)
				if err != nil {
					return err
				}
				p = pp
			}
			img, err := reg.Pull(ctx, s.Base, p)
			if err != nil {
				return err
			}
			d, err := img.Digest()
			if err != nil {
				return fmt.Errorf("image %q: %w", s.Base, err)
			}
			log.Infof("Stage %s: FROM %s (%s), %d instructions", label, s.Base, d, len(s.Commands))
		}
	}
	log.Infof("Dry run: %d stages planned, nothing built or pushed", len(plan.Stages))
	return nil
}

// prepareKilnDir returns kiln's work directory: --kiln-dir, else /kiln when
// it exists (the executor image), else a new temporary directory that is
// removed at the end.
func prepareKilnDir(flag string) (string, func(), error) {
	noop := func() {}
	dir := flag
	if dir == "" {
		if st, err := os.Stat("/kiln"); err == nil && st.IsDir() && writable("/kiln") {
			dir = "/kiln"
		}
	}
	if dir == "" {
		tmp, err := os.MkdirTemp("", "kiln-")
		if err != nil {
			return "", noop, err
		}
		return tmp, func() { os.RemoveAll(tmp) }, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", noop, err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return "", noop, fmt.Errorf("creating --kiln-dir %q: %w", dir, err)
	}
	return abs, noop, nil
}

func writable(dir string) bool {
	f, err := os.CreateTemp(dir, ".probe-")
	if err != nil {
		return false
	}
	f.Close()
	os.Remove(f.Name())
	return true
}
