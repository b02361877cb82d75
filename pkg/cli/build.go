package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/pkg/buildcontext"
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
	insecure, insecurePull              bool
	skipTLSVerify, skipTLSVerifyPull    bool
	insecureRegistries                  []string
	skipTLSVerifyRegistries             []string
	registryCertificates                []string
	ignorePaths                         []string
	ignoreVarRun                        bool
	isolation                           string
	force                               bool
	kilnDir                             string
	jobs                                int
	snapshotMode                        string
	compression                         string
	compressionLevel                    int
	secrets                             []string
	cleanup                             bool
	skipUnusedStages                    bool
	useNewRun                           bool
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
	fl.BoolVar(&f.insecure, "insecure", false, "push over plain HTTP")
	fl.BoolVar(&f.insecurePull, "insecure-pull", false, "pull over plain HTTP")
	fl.BoolVar(&f.skipTLSVerify, "skip-tls-verify", false, "push without verifying TLS certificates")
	fl.BoolVar(&f.skipTLSVerifyPull, "skip-tls-verify-pull", false, "pull without verifying TLS certificates")
	fl.StringArrayVar(&f.insecureRegistries, "insecure-registry", nil, "registry HOST[:PORT] reached over plain HTTP (repeatable)")
	fl.StringArrayVar(&f.skipTLSVerifyRegistries, "skip-tls-verify-registry", nil, "registry HOST[:PORT] whose certificate is not verified (repeatable)")
	fl.StringArrayVar(&f.registryCertificates, "registry-certificate", nil, "HOST[:PORT]=CA.pem: trust this CA for that registry (repeatable)")
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
	opts := []executor.Option{
		executor.WithImageSource(reg),
		executor.WithContext(bctx.FS()),
		executor.WithContextDir(bctx.Dir()),
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

// openContext opens the build context; the default is the current directory.
func openContext(ctx context.Context, f *buildFlags, workDir string) (*buildcontext.Context, error) {
	spec := f.context
	if spec == "" {
		spec = "."
	}
	gitOpts, err := gitOptions(f.git)
	if err != nil {
		return nil, err
	}
	opts := []buildcontext.Option{buildcontext.WithWorkDir(workDir), buildcontext.WithStdin(os.Stdin), buildcontext.WithGit(gitOpts)}
	if f.contextSubPath != "" {
		opts = append(opts, buildcontext.WithSubPath(f.contextSubPath))
	}
	return buildcontext.Open(ctx, spec, opts...)
}

// gitOptions reads kaniko's --git KEY=VALUE options and GIT_* environment
// variables. Unlike kaniko, which ignores unknown keys and takes the rest of
// a comma-separated value as the branch, it accepts the form its help shows
// ("branch=x,single-branch=true") and rejects unknown keys.
func gitOptions(values []string) (buildcontext.GitOptions, error) {
	g := buildcontext.GitOptions{
		Username: os.Getenv("GIT_USERNAME"),
		Password: os.Getenv("GIT_PASSWORD"),
		Token:    os.Getenv("GIT_TOKEN"),
	}
	switch m := os.Getenv("GIT_PULL_METHOD"); m {
	case "", "https":
	case "http":
		g.PlainHTTP = true
	default:
		return g, fmt.Errorf("invalid GIT_PULL_METHOD %q: use https or http", m)
	}
	for _, v := range values {
		for _, kv := range strings.Split(v, ",") {
			key, val, ok := strings.Cut(kv, "=")
			if !ok {
				return g, fmt.Errorf("invalid --git %q: want KEY=VALUE", kv)
			}
			var err error
			switch key {
			case "branch":
				g.Branch = val
			case "single-branch":
				var single bool
				single, err = strconv.ParseBool(val)
				g.AllBranches = !single
			case "depth":
				var n int
				if n, err = strconv.Atoi(val); err == nil && n < 0 {
					err = errors.New("a depth is 0 (the whole history) or more")
				}
				g.Depth = n
				if n == 0 {
					// 0 is no limit, as in kaniko's depth option;
					// kiln's default, 1, is GitOptions' zero value.
					g.Depth = -1
				}
			case "recurse-submodules":
				g.RecurseSubmodules, err = strconv.ParseBool(val)
			case "insecure-skip-tls":
				g.InsecureSkipTLS, err = strconv.ParseBool(val)
			default:
				return g, fmt.Errorf("unknown --git option %q: use branch, single-branch, depth, recurse-submodules or insecure-skip-tls", key)
			}
			if err != nil {
				return g, fmt.Errorf("invalid --git %q: %w", kv, err)
			}
		}
	}
	return g, nil
}

// readDockerfile reads the Dockerfile: "-" is stdin, an absolute path is
// used as is, a relative one is looked up in the context first and then,
// as kaniko does, relative to the current directory. It returns the path
// read ("" for stdin), for <Dockerfile>.dockerignore.
func readDockerfile(name, contextDir string) (*dockerfile.Dockerfile, string, error) {
	if name == "-" {
		df, err := dockerfile.Parse(os.Stdin, "Dockerfile")
		return df, "", err
	}
	candidates := []string{name}
	if !filepath.IsAbs(name) {
		candidates = []string{filepath.Join(contextDir, name), name}
	}
	for _, p := range candidates {
		fh, err := os.Open(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, "", fmt.Errorf("reading Dockerfile %q: %w", p, err)
		}
		defer fh.Close()
		df, err := dockerfile.Parse(fh, name)
		return df, p, err
	}
	return nil, "", fmt.Errorf("Dockerfile %q not found in the build context %q nor in the current directory", name, contextDir)
}

// registryOptions turns the registry flags into registry client options.
func registryOptions(f *buildFlags, cacheDir string, log logrus.FieldLogger) ([]registry.Option, error) {
	opts := []registry.Option{
		registry.WithLogger(log),
		registry.WithInsecureRegistries(f.insecureRegistries...),
		registry.WithSkipTLSVerifyRegistries(f.skipTLSVerifyRegistries...),
		registry.WithInsecurePull(f.insecurePull),
		registry.WithInsecurePush(f.insecure),
		registry.WithSkipTLSVerifyPull(f.skipTLSVerifyPull),
		registry.WithSkipTLSVerifyPush(f.skipTLSVerify),
		registry.WithCacheDir(cacheDir),
		registry.WithUserAgent("kiln/" + Version),
	}
	for _, rc := range f.registryCertificates {
		host, file, ok := strings.Cut(rc, "=")
		if !ok || host == "" || file == "" {
			return nil, fmt.Errorf("invalid --registry-certificate %q: want HOST[:PORT]=PATH", rc)
		}
		opts = append(opts, registry.WithRegistryCertificate(host, file))
	}
	return opts, nil
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

// parsePlatform parses --custom-platform; empty means this machine's.
func parsePlatform(s string) (v1.Platform, error) {
	if s == "" {
		return v1.Platform{OS: "linux", Architecture: runtime.GOARCH}, nil
	}
	p, err := v1.ParsePlatform(s)
	if err != nil || p.OS == "" || p.Architecture == "" {
		return v1.Platform{}, fmt.Errorf("invalid --custom-platform %q: want OS/ARCH[/VARIANT], e.g. linux/arm64", s)
	}
	return *p, nil
}

// reproducibleEpoch is $SOURCE_DATE_EPOCH, or the Unix epoch.
func reproducibleEpoch() (time.Time, error) {
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	sec, err := strconv.ParseInt(v, 10, 64)
	if err != nil || sec < 0 {
		return time.Time{}, fmt.Errorf("invalid SOURCE_DATE_EPOCH %q: want seconds since 1970", v)
	}
	return time.Unix(sec, 0).UTC(), nil
}

// parseBuildArgs resolves --build-arg values: NAME alone takes the value
// from the environment and is dropped when unset, like docker build.
func parseBuildArgs(args []string) (map[string]string, error) {
	out := map[string]string{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if k == "" {
			return nil, fmt.Errorf("invalid --build-arg %q: want NAME=VALUE or NAME", a)
		}
		if !ok {
			env, set := os.LookupEnv(k)
			if !set {
				continue
			}
			v = env
		}
		out[k] = v
	}
	return out, nil
}

// parseKeyValues parses repeated KEY=VALUE flags.
func parseKeyValues(flag string, values []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range values {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("invalid %s %q: want KEY=VALUE", flag, kv)
		}
		out[k] = v
	}
	return out, nil
}

// parseSecrets reads --secret id=ID,src=FILE (or env=VAR) values.
func parseSecrets(values []string) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, s := range values {
		fields := map[string]string{}
		for _, part := range strings.Split(s, ",") {
			k, v, ok := strings.Cut(part, "=")
			if !ok {
				return nil, fmt.Errorf("invalid --secret %q: want id=ID,src=FILE or id=ID,env=VAR", s)
			}
			fields[strings.TrimSpace(k)] = v
		}
		id := fields["id"]
		if id == "" {
			return nil, fmt.Errorf("invalid --secret %q: no id", s)
		}
		src := fields["src"]
		if src == "" {
			src = fields["source"]
		}
		switch {
		case src != "":
			data, err := os.ReadFile(src)
			if err != nil {
				return nil, fmt.Errorf("--secret id=%s: %w", id, err)
			}
			out[id] = data
		case fields["env"] != "":
			v, ok := os.LookupEnv(fields["env"])
			if !ok {
				return nil, fmt.Errorf("--secret id=%s: environment variable %q is not set", id, fields["env"])
			}
			out[id] = []byte(v)
		default:
			return nil, fmt.Errorf("invalid --secret %q: give src=FILE or env=VAR", s)
		}
	}
	return out, nil
}
