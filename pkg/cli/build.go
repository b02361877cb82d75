package cli

import (
	"runtime"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kiln-build/kiln/pkg/executor"
	"github.com/kiln-build/kiln/pkg/layer"
	"github.com/kiln-build/kiln/pkg/sandbox"
)

// buildFlags are the values of `kiln build`'s flags, as given.
type buildFlags struct {
	context, contextSubPath, dockerfile string
	git                                 []string
	destinations, buildArgs, labels     []string
	annotations                         []string
	imageFormat                         string
	target                              string
	noPush, dryRun                      bool
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
	ssh              []string
	cleanup          bool
	skipUnusedStages bool
	useNewRun        bool
	preserveContext  bool
	maxLayers        int
	progress         string
	reportFile       string
	layerStoreLimit  string
	cacheFlags
}

// cacheFlags are kaniko's layer cache flags, with its names and defaults.
type cacheFlags struct {
	cache             bool
	cacheRepo         string
	cacheTTL          time.Duration
	cacheRunLayers    bool
	cacheCopyLayers   bool
	noPushCache       bool
	cacheDir          string
	compressedCaching bool
}

func addCacheFlags(fl *pflag.FlagSet, c *cacheFlags) {
	fl.BoolVar(&c.cache, "cache", false, "serve steps whose inputs were built before from the layer cache, and store the others in it")
	fl.StringVar(&c.cacheRepo, "cache-repo", "", `where the layer cache is: a registry repository, or "oci:/path" for an OCI layout directory builds on one node can share (default: <first destination's repository>/cache)`)
	fl.DurationVar(&c.cacheTTL, "cache-ttl", 336*time.Hour, "cache entries older than this are not used")
	fl.BoolVar(&c.cacheRunLayers, "cache-run-layers", true, "cache the layers of RUN")
	fl.BoolVar(&c.cacheCopyLayers, "cache-copy-layers", false, "cache the layers of COPY and ADD")
	fl.BoolVar(&c.noPushCache, "no-push-cache", false, "use the layer cache without writing to it")
	fl.StringVar(&c.cacheDir, "cache-dir", "", "directory of base images stored by `kiln cache warm`, used before the registry")
	fl.BoolVar(&c.compressedCaching, "compressed-caching", true, "accepted for kaniko compatibility: kiln caches the compressed layers it pushes, whatever the value")
}

func newBuildCommand(g *globalFlags) *cobra.Command {
	cmd, _ := buildCommand(g)
	return cmd
}

// buildCommand returns `kiln build` and the values its flags set.
func buildCommand(g *globalFlags) (*cobra.Command, *buildFlags) {
	f := &buildFlags{}
	cmd := &cobra.Command{
		Use:   "build [flags]",
		Short: "Build an image from a Dockerfile and push it",
		Long: `Build an image from a Dockerfile without a daemon and push it to one or more
registries. The flags of kaniko's executor are accepted under the same names.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := logrus.StandardLogger()
			if err := rejectRefused(cmd.Flags()); err != nil {
				return err
			}
			if err := applyEnvironment(cmd.Flags(), environ(), log); err != nil {
				return err
			}
			cfg, err := f.config()
			if err != nil {
				return err
			}
			out, err := newProgressOutput(f.progress, g, log)
			if err != nil {
				return err
			}
			image, err := runBuild(cmd.Context(), cfg, out, runOutput(g, log), log)
			out.close()
			if image != "" {
				for _, line := range out.report.summary(image) {
					log.Info(line)
				}
			}
			if f.reportFile != "" {
				if rerr := out.report.write(f.reportFile, image); rerr != nil && err == nil {
					err = rerr
				}
			}
			return err
		},
	}
	cmd.SetUsageTemplate(buildUsageTemplate)
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
	fl.StringArrayVar(&f.annotations, "annotation", nil, "annotation KEY=VALUE on the image manifest (repeatable; makes the image OCI)")
	fl.StringVar(&f.imageFormat, "image-format", "", "media types of the image: docker or oci (default: those of the base image)")
	fl.BoolVar(&f.noPush, "no-push", false, "build without pushing")
	fl.BoolVar(&f.dryRun, "dryrun", false, "read the context and the Dockerfile, resolve the base images and check access to the destinations; build and push nothing")
	fl.StringVar(&f.tarPath, "tar-path", "", "also write the image as a docker-loadable tarball to this file")
	fl.StringVar(&f.ociLayoutPath, "oci-layout-path", "", "also write the image into this OCI image layout directory")
	fl.StringVar(&f.digestFile, "digest-file", "", "write the image digest to this file")
	fl.StringVar(&f.imageNameWithDigestFile, "image-name-with-digest-file", "", "write REPOSITORY@DIGEST of each destination to this file")
	fl.StringVar(&f.imageNameTagWithDigestFile, "image-name-tag-with-digest-file", "", "write REPOSITORY:TAG@DIGEST of each destination to this file")
	fl.StringVar(&f.platform, "custom-platform", "", "target platform OS/ARCH[/VARIANT] (default: this machine's)")
	fl.BoolVar(&f.reproducible, "reproducible", false, "zero timestamps (or use $SOURCE_DATE_EPOCH) so identical inputs give an identical digest")
	fl.BoolVar(&f.singleSnapshot, "single-snapshot", false, "one layer per stage for all its filesystem changes")
	addRegistryFlags(fl, &f.registryFlags)
	fl.StringArrayVar(&f.ignorePaths, "ignore-path", nil, "container path never snapshotted (nor touched in-place) (repeatable)")
	fl.StringVar(&f.isolation, "isolation", string(sandbox.ModeAuto), "how RUN is isolated: auto, chroot, rootless or in-place")
	fl.BoolVar(&f.force, "force", false, "allow in-place isolation outside a container")
	fl.StringVar(&f.kilnDir, "kiln-dir", "", `kiln's work directory (default: /kiln in the executor image, else a temporary directory)`)
	fl.IntVar(&f.jobs, "jobs", runtime.NumCPU(), "stages built at the same time")
	fl.StringVar(&f.compression, "compression", string(layer.Gzip), "layer compression: gzip, zstd (OCI images only) or estargz (gzip layers with a table of contents, lazily pullable by the stargz snapshotter)")
	fl.IntVar(&f.compressionLevel, "compression-level", 0, "compression level (0: the compressor's default)")
	fl.StringVar(&f.progress, "progress", progressAuto, "how progress is shown: auto (tty on a terminal, else plain), tty (a live view), plain (log lines with percent and rate), json (one event per line)")
	fl.StringVar(&f.reportFile, "report-file", "", "write what the build did as JSON: steps, durations, layers, cache hits, what was pulled and pushed")
	fl.StringVar(&f.layerStoreLimit, "layer-store-size", "10GiB", "chroot isolation: keep base layers extracted in --kiln-dir, up to this size (least recently used go first), for the next builds to mount without extracting them; 0 turns it off")
	fl.IntVar(&f.maxLayers, "max-layers", executor.DefaultMaxLayers, "refuse an image with more layers than this, which container runtimes cannot stack (0: no limit)")
	fl.StringArrayVar(&f.ssh, "ssh", nil, "SSH agent for RUN --mount=type=ssh: ID (the agent of $SSH_AUTH_SOCK), ID=SOCKET, or ID=KEYFILE[,KEYFILE...] (keys held in memory); ID is usually default (repeatable)")
	fl.StringArrayVar(&f.secrets, "secret", nil, "secret for RUN --mount=type=secret: id=ID,src=FILE or id=ID,env=VAR (repeatable)")
	addCacheFlags(fl, &f.cacheFlags)
	addCompatFlags(fl, f)
	return cmd, f
}
