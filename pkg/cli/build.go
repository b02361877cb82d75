package cli

import (
	"runtime"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

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
	cleanup          bool
	skipUnusedStages bool
	useNewRun        bool
	preserveContext  bool
	maxLayers        int
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
			return runBuild(cmd.Context(), cfg, runOutput(g, log), log)
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
	fl.IntVar(&f.maxLayers, "max-layers", executor.DefaultMaxLayers, "refuse an image with more layers than this, which container runtimes cannot stack (0: no limit)")
	fl.StringArrayVar(&f.secrets, "secret", nil, "secret for RUN --mount=type=secret: id=ID,src=FILE or id=ID,env=VAR (repeatable)")
	addCompatFlags(fl, f)
	return cmd, f
}
