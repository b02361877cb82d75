package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/pkg/dockerfile"
	"github.com/kiln-build/kiln/pkg/executor"
	"github.com/kiln-build/kiln/pkg/layer"
	"github.com/kiln-build/kiln/pkg/output"
	"github.com/kiln-build/kiln/pkg/registry"
	"github.com/kiln-build/kiln/pkg/sandbox"
)

// buildFlags are the values of `kiln build`'s flags.
type buildFlags struct {
	context, contextSubPath, dockerfile string
	git                                 []string
	destinations, buildArgs, labels     []string
	target                              string
	noPush                              bool
	tarPath, ociLayoutPath              string
	digestFile                          string
	imageNameWithDigestFile             string
	imageNameTagWithDigestFile          string
	platform                            string
	reproducible, singleSnapshot        bool
	registryFlags
	ignorePaths      []string
	ignoreVarRun     bool
	isolation        string
	force            bool
	kilnDir          string
	jobs             int
	snapshotMode     string
	compression      string
	compressionLevel int
	secrets          []string
	cleanup          bool
	skipUnusedStages bool
	useNewRun        bool
}

func newBuildCommand(g *globalFlags) *cobra.Command {
	f := &buildFlags{}
	cmd := &cobra.Command{
		Use:   "build [flags]",
		Short: "Build an image from a Dockerfile and push it",
		Long: `Build an image from a Dockerfile without a daemon and push it to one or more
registries. The flags of kaniko's executor are accepted under the same names.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := rejectUnsupported(cmd); err != nil {
				return err
			}
			return runBuild(cmd.Context(), g, f, cmd)
		},
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringVarP(&f.context, "context", "c", "", `build context: a directory ("dir://" optional), "tar://PATH" (tar, optionally compressed), "tar://stdin", a git repository "git://HOST/PATH[#REF[#COMMIT]]" or "https://HOST/PATH.git[#REF[#COMMIT]]", or any other "https://" URL of a tar archive (default: the current directory)`)
	fl.StringVar(&f.contextSubPath, "context-sub-path", "", "use this sub-directory of the context as the context")
	fl.StringArrayVar(&f.git, "git", nil, "git context option KEY=VALUE, repeatable or comma-separated: branch=NAME, single-branch=false (fetch every branch), depth=N (commits of history, 0 for all; default 1), recurse-submodules=true, insecure-skip-tls=true; credentials come from GIT_USERNAME and GIT_PASSWORD, or GIT_TOKEN")
	fl.StringVarP(&f.dockerfile, "dockerfile", "f", "Dockerfile", `Dockerfile: absolute, relative to the context, or "-" for stdin`)
	fl.StringArrayVarP(&f.destinations, "destination", "d", nil, "image reference to push to (repeatable)")
	fl.StringArrayVar(&f.buildArgs, "build-arg", nil, "build argument NAME=VALUE, or NAME to take the value from the environment (repeatable)")
	fl.StringVar(&f.target, "target", "", "build this stage (name or index) instead of the last one")
	fl.StringArrayVar(&f.labels, "label", nil, "label KEY=VALUE added to the image (repeatable)")
	fl.BoolVar(&f.noPush, "no-push", false, "build without pushing")
	fl.StringVar(&f.tarPath, "tar-path", "", "also write the image as a docker-loadable tarball to this file")
	fl.StringVar(&f.ociLayoutPath, "oci-layout-path", "", "also write the image into this OCI image layout directory")
	fl.StringVar(&f.digestFile, "digest-file", "", "write the image digest to this file")
	fl.StringVar(&f.imageNameWithDigestFile, "image-name-with-digest-file", "", "write REPOSITORY@DIGEST of each destination to this file")
	fl.StringVar(&f.imageNameTagWithDigestFile, "image-name-tag-with-digest-file", "", "write REPOSITORY:TAG@DIGEST of each destination to this file")
	fl.StringVar(&f.platform, "custom-platform", "", "target platform OS/ARCH[/VARIANT] (default: this machine's)")
	fl.StringVar(&f.platform, "platform", "", "alias of --custom-platform")
	fl.BoolVar(&f.reproducible, "reproducible", false, "zero timestamps (or use $SOURCE_DATE_EPOCH) so identical inputs give an identical digest")
	fl.BoolVar(&f.singleSnapshot, "single-snapshot", false, "one layer per stage for all its filesystem changes")
	addRegistryFlags(fl, &f.registryFlags)
	fl.StringArrayVar(&f.ignorePaths, "ignore-path", nil, "container path never snapshotted (nor touched in-place) (repeatable)")
	fl.BoolVar(&f.ignoreVarRun, "ignore-var-run", true, "in-place isolation: leave /var/run alone")
	fl.StringVar(&f.isolation, "isolation", string(sandbox.ModeAuto), "how RUN is isolated: auto, chroot, rootless or in-place")
	fl.BoolVar(&f.force, "force", false, "allow in-place isolation outside a container")
	fl.StringVar(&f.kilnDir, "kiln-dir", "", `kiln's work directory (default: /kiln in the executor image, else a temporary directory)`)
	fl.StringVar(&f.kilnDir, "kaniko-dir", "", "alias of --kiln-dir")
	fl.IntVar(&f.jobs, "jobs", runtime.NumCPU(), "stages built at the same time")
	fl.StringVar(&f.snapshotMode, "snapshot-mode", "", "accepted for kaniko compatibility (full, redo, time): kiln always compares full metadata")
	fl.StringVar(&f.compression, "compression", string(layer.Gzip), "layer compression: gzip or zstd")
	fl.IntVar(&f.compressionLevel, "compression-level", 0, "compression level (0: the compressor's default)")
	fl.StringArrayVar(&f.secrets, "secret", nil, "secret for RUN --mount=type=secret: id=ID,src=FILE or id=ID,env=VAR (repeatable)")
	fl.BoolVar(&f.cleanup, "cleanup", false, "kaniko compatibility: in-place builds always restore the container's filesystem")
	fl.BoolVar(&f.skipUnusedStages, "skip-unused-stages", true, "build only the stages the target needs (kiln cannot build unused stages)")
	fl.BoolVar(&f.useNewRun, "use-new-run", false, "kaniko compatibility: kiln's RUN snapshots are always metadata-based")
	for _, n := range []string{"platform", "kaniko-dir", "cleanup", "use-new-run", "ignore-var-run", "skip-unused-stages"} {
		fl.Lookup(n).Hidden = true
	}
	addUnsupportedFlags(fl)
	return cmd
}

func runBuild(ctx context.Context, g *globalFlags, f *buildFlags, cmd *cobra.Command) error {
	log := logrus.StandardLogger()
	spec := &output.Spec{
		Destinations:               f.destinations,
		NoPush:                     f.noPush,
		TarPath:                    f.tarPath,
		OCILayout:                  f.ociLayoutPath,
		DigestFile:                 f.digestFile,
		ImageNameWithDigestFile:    f.imageNameWithDigestFile,
		ImageNameTagWithDigestFile: f.imageNameTagWithDigestFile,
	}
	if err := spec.Validate(); err != nil {
		return err
	}
	if !f.skipUnusedStages {
		return errors.New("--skip-unused-stages=false is not supported: kiln builds the stages the target needs")
	}
	f.compression = strings.ToLower(f.compression)
	comp, err := layer.ParseCompression(f.compression)
	if err != nil {
		return err
	}
	if f.snapshotMode != "" {
		switch f.snapshotMode {
		case "full", "redo", "time":
			log.Infof("--snapshot-mode=%s: kiln detects changes from full file metadata (inode, size, mode, owner, mtime, ctime), which is exact without rehashing", f.snapshotMode)
		default:
			return fmt.Errorf("invalid --snapshot-mode %q: use full, redo or time", f.snapshotMode)
		}
	}
	platform, err := parsePlatform(f.platform)
	if err != nil {
		return err
	}
	var epoch *time.Time
	if f.reproducible {
		t, err := reproducibleEpoch()
		if err != nil {
			return err
		}
		epoch = &t
	}
	secrets, err := parseSecrets(f.secrets)
	if err != nil {
		return err
	}
	labels, err := parseKeyValues("--label", f.labels)
	if err != nil {
		return err
	}
	buildArgs, err := parseBuildArgs(f.buildArgs)
	if err != nil {
		return err
	}

	mode, err := sandbox.ParseMode(f.isolation)
	if err != nil {
		return err
	}
	// Isolation is decided before the context is read: rootless isolation
	// re-executes kiln in a user namespace, which must happen before stdin
	// is consumed. A Dockerfile without RUN needs none, so failing to find
	// one only matters once the plan shows RUN instructions.
	mode, reason, isolationErr := sandbox.Resolve(mode, f.force)
	if isolationErr == nil && mode == sandbox.ModeRootless {
		// Re-executes kiln in a user namespace; returns in the new process.
		if err := sandbox.EnterUserNamespace(); err != nil {
			return err
		}
	}
	if isolationErr == nil {
		log.Infof("Isolation %s: %s", mode, reason)
	}

	kilnDir, removeKilnDir, err := prepareKilnDir(f.kilnDir)
	if err != nil {
		return err
	}
	defer removeKilnDir()
	workDir, err := os.MkdirTemp(kilnDir, "build-")
	if err != nil {
		return fmt.Errorf("creating work directory in %q: %w", kilnDir, err)
	}
	defer os.RemoveAll(workDir)

	bctx, err := openContext(ctx, f, workDir)
	if err != nil {
		return err
	}
	defer bctx.Close()
	df, dfPath, err := readDockerfile(f.dockerfile, bctx.Dir())
	if err != nil {
		return err
	}
	if dfPath != "" {
		if err := bctx.LoadIgnore(dfPath); err != nil {
			return err
		}
	}
	for _, w := range df.Warnings {
		log.Warn(w)
	}
	if df.Syntax != "" {
		log.Infof("Ignoring the # syntax=%s directive: kiln has its own Dockerfile frontend", df.Syntax)
	}
	plan, err := df.Plan(dockerfile.PlanOptions{BuildArgs: buildArgs, Target: f.target, TargetPlatform: platform})
	if err != nil {
		return err
	}
	if len(plan.UnusedBuildArgs) > 0 {
		log.Warnf("Build arguments not consumed by any ARG: %s", strings.Join(plan.UnusedBuildArgs, ", "))
	}
	if isolationErr != nil {
		if executor.NeedsRoot(plan, f.singleSnapshot) {
			return fmt.Errorf("this Dockerfile has RUN instructions, and RUN cannot be isolated here: %w", isolationErr)
		}
		log.Infof("No isolation for RUN is available (%v): fine, this Dockerfile has no RUN", isolationErr)
	}

	regOpts, err := registryOptions(f, filepath.Join(kilnDir, "blobs"), log)
	if err != nil {
		return err
	}
	reg, err := registry.New(regOpts...)
	if err != nil {
		return err
	}
	if !f.noPush && !f.skipPushPermissionCheck {
		if err := reg.CheckPush(ctx, spec.Destinations); err != nil {
			return err
		}
	}
	opts := []executor.Option{
		executor.WithImageSource(reg),
		executor.WithBuildContext(bctx),
		executor.WithWorkDir(workDir),
		executor.WithPlatform(platform),
		executor.WithCompression(comp, f.compressionLevel),
		executor.WithLabels(labels),
		executor.WithSingleSnapshot(f.singleSnapshot),
		executor.WithJobs(f.jobs),
		executor.WithLogger(log),
		executor.WithSecrets(secrets),
		executor.WithRootless(mode == sandbox.ModeRootless),
		executor.WithIgnorePaths(ignorePaths(f, mode)),
		executor.WithRunOutput(runOutput(g, log)),
		executor.WithCacheDir(filepath.Join(kilnDir, "cache")),
	}
	if epoch != nil {
		opts = append(opts, executor.WithReproducible(*epoch))
	}
	if isolationErr == nil {
		sb, err := sandbox.New(mode, sandbox.WithWorkDir(workDir), sandbox.WithLogger(log))
		if err != nil {
			return err
		}
		opts = append(opts, executor.WithSandbox(sb))
	}
	b, err := executor.New(plan, opts...)
	if err != nil {
		return err
	}
	start := time.Now()
	img, err := b.Build(ctx)
	if err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	log.Infof("Built image %s in %s", digest, time.Since(start).Round(time.Millisecond))
	return output.Write(ctx, img, spec, reg, log)
}

// ignorePaths adds /var/run to --ignore-path for in-place builds, as kaniko
// does by default.
func ignorePaths(f *buildFlags, mode sandbox.Mode) []string {
	paths := append([]string(nil), f.ignorePaths...)
	if mode == sandbox.ModeInPlace && f.ignoreVarRun {
		paths = append(paths, "/var/run")
	}
	for i, p := range paths {
		paths[i] = filepath.Clean("/" + p)
	}
	return paths
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
