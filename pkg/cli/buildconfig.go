package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker/go-units"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/pkg/buildcontext"
	"github.com/kiln-build/kiln/pkg/dockerfile"
	"github.com/kiln-build/kiln/pkg/layer"
	"github.com/kiln-build/kiln/pkg/output"
	"github.com/kiln-build/kiln/pkg/sandbox"
	"github.com/kiln-build/kiln/pkg/sshagent"
)

// buildConfig is a build as its flags describe it, checked and parsed, with
// nothing read from disk or the network yet: runBuild takes it from there.
type buildConfig struct {
	flags *buildFlags // for the registry options and the context, built from flags

	output      output.Spec
	format      output.Format
	annotations map[string]string
	dryRun      bool

	contextSpec string
	contextOpts []buildcontext.Option
	dockerfile  string
	plan        dockerfile.PlanOptions

	compression      layer.Compression
	compressionLevel int
	epoch            *time.Time
	labels           map[string]string
	secrets          map[string][]byte
	ssh              map[string]*sshagent.Agent
	singleSnapshot   bool
	jobs             int
	maxLayers        int

	isolation    sandbox.Mode
	force        bool
	kilnDir      string
	ignorePaths  []string // clean container paths
	ignoreVarRun bool

	cache *cacheConfig // nil without --cache
	// layerStore is the size limit of the extracted layers kept in
	// --kiln-dir; 0 keeps none.
	layerStore int64
	// baseImages is --cache-dir: base images stored by `kiln cache warm`.
	baseImages string
	cacheTTL   time.Duration

	// notes are said once at the start of the build.
	notes []string
}

// cacheConfig is the layer cache of a build.
type cacheConfig struct {
	repo      string // a registry repository, or
	layoutDir string // an OCI layout directory (oci:/path)
	run, copy bool
	write     bool
}

// cacheConfig checks the cache flags.
func (f *buildFlags) cacheConfig() (*cacheConfig, error) {
	if f.cacheTTL < 0 {
		return nil, fmt.Errorf("invalid --cache-ttl %s: 0 (no limit) or more", f.cacheTTL)
	}
	if !f.cache {
		return nil, nil
	}
	c := &cacheConfig{run: f.cacheRunLayers, copy: f.cacheCopyLayers, write: !f.noPushCache}
	switch repo := f.cacheRepo; {
	case strings.HasPrefix(repo, "oci:"):
		c.layoutDir = strings.TrimPrefix(repo, "oci:")
		if c.layoutDir == "" {
			return nil, errors.New(`invalid --cache-repo "oci:": give a directory, "oci:/path"`)
		}
		abs, err := filepath.Abs(c.layoutDir)
		if err != nil {
			return nil, err
		}
		c.layoutDir = abs
	case repo != "":
		r, err := name.NewRepository(repo, name.WeakValidation)
		if err != nil {
			return nil, fmt.Errorf("invalid --cache-repo %q: %w", repo, err)
		}
		c.repo = r.Name()
	case len(f.destinations) > 0:
		// kaniko's default: the first destination's repository, /cache.
		ref, err := name.ParseReference(f.destinations[0], name.WeakValidation)
		if err != nil {
			return nil, fmt.Errorf("invalid destination %q: %w", f.destinations[0], err)
		}
		c.repo = ref.Context().Name() + "/cache"
	default:
		return nil, errors.New("--cache needs --cache-repo (a repository, or oci:/path), or a --destination to put the cache beside")
	}
	return c, nil
}

// config checks the flags and turns them into a buildConfig.
func (f *buildFlags) config() (*buildConfig, error) {
	c := &buildConfig{
		flags: f,
		output: output.Spec{
			Destinations:               f.destinations,
			NoPush:                     f.noPush || f.dryRun,
			TarPath:                    f.tarPath,
			OCILayout:                  f.ociLayoutPath,
			DigestFile:                 f.digestFile,
			ImageNameWithDigestFile:    f.imageNameWithDigestFile,
			ImageNameTagWithDigestFile: f.imageNameTagWithDigestFile,
		},
		dryRun:           f.dryRun,
		dockerfile:       f.dockerfile,
		compressionLevel: f.compressionLevel,
		singleSnapshot:   f.singleSnapshot,
		jobs:             f.jobs,
		maxLayers:        f.maxLayers,
		force:            f.force,
		kilnDir:          f.kilnDir,
		ignoreVarRun:     f.ignoreVarRun,
	}
	if err := c.output.Validate(); err != nil {
		return nil, err
	}
	if !f.skipUnusedStages {
		return nil, errors.New("--skip-unused-stages=false is not supported: kiln builds the stages the target needs")
	}
	var err error
	if c.format, err = output.ParseFormat(strings.ToLower(f.imageFormat)); err != nil {
		return nil, err
	}
	if c.annotations, err = parseKeyValues("--annotation", f.annotations); err != nil {
		return nil, err
	}
	if len(c.annotations) > 0 && c.format == output.FormatAsBuilt {
		c.format = output.FormatOCI
	}
	if c.compression, err = layer.ParseCompression(strings.ToLower(f.compression)); err != nil {
		return nil, err
	}
	if err := layer.CheckLevel(c.compression, c.compressionLevel); err != nil {
		return nil, fmt.Errorf("--compression-level: %w", err)
	}
	if c.format == output.FormatDocker && c.compression == layer.Zstd {
		return nil, errors.New("--compression=zstd needs an OCI image: Docker manifests cannot hold zstd layers (use --image-format=oci)")
	}
	switch f.snapshotMode {
	case "":
	case "full", "redo", "time":
		c.notes = append(c.notes, fmt.Sprintf("--snapshot-mode=%s: kiln detects changes from full file metadata (inode, size, mode, owner, mtime, ctime), which is exact without rehashing", f.snapshotMode))
	default:
		return nil, fmt.Errorf("invalid --snapshot-mode %q: use full, redo or time", f.snapshotMode)
	}
	platform, err := parsePlatform(f.platform)
	if err != nil {
		return nil, err
	}
	buildArgs, err := parseBuildArgs(f.buildArgs)
	if err != nil {
		return nil, err
	}
	c.plan = dockerfile.PlanOptions{BuildArgs: buildArgs, Target: f.target, TargetPlatform: platform}
	if f.reproducible {
		t, err := reproducibleEpoch()
		if err != nil {
			return nil, err
		}
		c.epoch = &t
	}
	if c.secrets, err = parseSecrets(f.secrets); err != nil {
		return nil, err
	}
	if c.ssh, err = parseSSH(f.ssh, os.Getenv("SSH_AUTH_SOCK")); err != nil {
		return nil, err
	}
	if c.labels, err = parseKeyValues("--label", f.labels); err != nil {
		return nil, err
	}
	if c.isolation, err = sandbox.ParseMode(f.isolation); err != nil {
		return nil, err
	}
	if f.maxLayers < 0 {
		return nil, fmt.Errorf("invalid --max-layers %d: 0 (no limit) or more", f.maxLayers)
	}
	if f.jobs < 1 {
		return nil, fmt.Errorf("invalid --jobs %d: at least 1", f.jobs)
	}
	for _, p := range f.ignorePaths {
		c.ignorePaths = append(c.ignorePaths, filepath.Clean("/"+p))
	}
	if c.layerStore, err = units.RAMInBytes(f.layerStoreLimit); err != nil || c.layerStore < 0 {
		return nil, fmt.Errorf("invalid --layer-store-size %q: a size such as 10GiB, or 0", f.layerStoreLimit)
	}
	if c.cache, err = f.cacheConfig(); err != nil {
		return nil, err
	}
	c.baseImages, c.cacheTTL = f.cacheDir, f.cacheTTL
	c.contextSpec = f.context
	if c.contextSpec == "" {
		c.contextSpec = "."
	}
	gitOpts, err := gitOptions(f.git)
	if err != nil {
		return nil, err
	}
	c.contextOpts = []buildcontext.Option{buildcontext.WithGit(gitOpts)}
	if f.contextSubPath != "" {
		c.contextOpts = append(c.contextOpts, buildcontext.WithSubPath(f.contextSubPath))
	}
	return c, nil
}

// snapshotIgnores are the container paths no snapshot includes: --ignore-path,
// and /var/run in-place, as kaniko does by default.
func (c *buildConfig) snapshotIgnores(mode sandbox.Mode) []string {
	paths := append([]string(nil), c.ignorePaths...)
	if mode == sandbox.ModeInPlace && c.ignoreVarRun {
		paths = append(paths, "/var/run")
	}
	return paths
}

// platform is the target platform.
func (c *buildConfig) platform() v1.Platform { return c.plan.TargetPlatform }
