package executor

import (
	"context"
	"io"
	"net/http"
	"runtime"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sirupsen/logrus"

	"github.com/kiln-build/kiln/pkg/fsview"
	"github.com/kiln-build/kiln/pkg/layer"
	"github.com/kiln-build/kiln/pkg/layerstore"
	"github.com/kiln-build/kiln/pkg/progress"
	"github.com/kiln-build/kiln/pkg/sandbox"
	"github.com/kiln-build/kiln/pkg/sshagent"
)

// ImageSource pulls images for FROM and COPY --from; registry.Client is one.
type ImageSource interface {
	Pull(ctx context.Context, ref string, platform v1.Platform) (v1.Image, error)
}

type options struct {
	source         ImageSource
	context        BuildContext
	workDir        string
	platform       v1.Platform
	epoch          *time.Time
	compression    layer.Compression
	level          int
	labels         map[string]string
	singleSnapshot bool
	jobs           int
	log            logrus.FieldLogger
	httpClient     *http.Client
	sandbox        sandbox.Sandbox
	secrets        map[string][]byte
	rootless       bool
	ignorePaths    []string
	runOutput      io.Writer
	cacheDir       string
	secretsDir     string
	maxLayers      int
	cache          *CacheOptions
	ssh            map[string]*sshagent.Agent
	stateDir       string
	progress       progress.Sink
	publish        func(v1.Layer)
	layerStore     *layerstore.Store
}

// Option configures a Builder.
type Option func(*options)

// WithImageSource sets where base images come from.
func WithImageSource(s ImageSource) Option { return func(o *options) { o.source = s } }

// BuildContext is the build context: its files as COPY, ADD and RUN
// --mount see them (.dockerignore applied), and the directory it is in.
type BuildContext interface {
	FS() fsview.FS
	Dir() string
}

// WithBuildContext sets the build context; every reader of the context
// (COPY, ADD, RUN --mount=type=bind) sees its one .dockerignore view.
func WithBuildContext(c BuildContext) Option { return func(o *options) { o.context = c } }

// WithWorkDir sets the directory for layers, root filesystems and caches.
func WithWorkDir(dir string) Option { return func(o *options) { o.workDir = dir } }

// WithPlatform sets the target platform (base images are pulled for it).
func WithPlatform(p v1.Platform) Option { return func(o *options) { o.platform = p } }

// WithReproducible fixes every timestamp kiln writes (layer entries, config,
// history) to epoch, so identical inputs give an identical digest.
func WithReproducible(epoch time.Time) Option { return func(o *options) { o.epoch = &epoch } }

// WithCompression sets the compression of new layers.
func WithCompression(c layer.Compression, level int) Option {
	return func(o *options) { o.compression, o.level = c, level }
}

// WithLabels adds labels to the target image (--label).
func WithLabels(l map[string]string) Option { return func(o *options) { o.labels = l } }

// WithSingleSnapshot makes each stage produce one layer for all its
// filesystem changes (--single-snapshot).
func WithSingleSnapshot(b bool) Option { return func(o *options) { o.singleSnapshot = b } }

// WithJobs bounds how many stages build at once (default: CPU count).
func WithJobs(n int) Option { return func(o *options) { o.jobs = n } }

// WithLogger sets the logger.
func WithLogger(l logrus.FieldLogger) Option { return func(o *options) { o.log = l } }

// WithHTTPClient sets the client for ADD of URLs.
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.httpClient = c } }

// WithSandbox enables RUN instructions, run in sb. In-place isolation
// makes "/" the root of every stage, one stage at a time.
func WithSandbox(sb sandbox.Sandbox) Option { return func(o *options) { o.sandbox = sb } }

// WithSecrets provides the values of RUN --mount=type=secret, by id.
func WithSecrets(secrets map[string][]byte) Option { return func(o *options) { o.secrets = secrets } }

// WithRootless tells the builder that it runs in a user namespace whose id
// map may lack ids an image uses: such ownership is not kept.
func WithRootless(b bool) Option { return func(o *options) { o.rootless = b } }

// WithIgnorePaths excludes container paths from every snapshot
// (--ignore-path).
func WithIgnorePaths(paths []string) Option { return func(o *options) { o.ignorePaths = paths } }

// WithCacheDir keeps RUN --mount=type=cache directories in dir, so that
// they outlive the build (default: in the work dir, for this build only).
func WithCacheDir(dir string) Option { return func(o *options) { o.cacheDir = dir } }

// WithSecretsDir is where RUN secrets are written for the time of one RUN:
// a memory-backed directory keeps them off disks (default: the work dir).
func WithSecretsDir(dir string) Option { return func(o *options) { o.secretsDir = dir } }

// WithMaxLayers refuses a target image of more than n layers (0: no limit).
func WithMaxLayers(n int) Option { return func(o *options) { o.maxLayers = n } }

// DefaultMaxLayers is the most layers container runtimes stack reliably.
const DefaultMaxLayers = 127

// WithSSH provides SSH agents to RUN --mount=type=ssh, by id (--ssh).
func WithSSH(agents map[string]*sshagent.Agent) Option { return func(o *options) { o.ssh = agents } }

// WithStateDir is a directory that outlives builds (in kiln's own
// directory): in-place isolation keeps there what the next build needs to
// put "/" back if this one is killed before it can.
func WithStateDir(dir string) Option { return func(o *options) { o.stateDir = dir } }

// WithProgress sends the start and the end of every step to sink.
func WithProgress(sink progress.Sink) Option { return func(o *options) { o.progress = sink } }

// WithLayerPublisher calls publish with every layer that will be part of
// the image Build returns, as soon as it is made, so that it can be
// uploaded while the build goes on.
func WithLayerPublisher(publish func(v1.Layer)) Option {
	return func(o *options) { o.publish = publish }
}

// WithLayerStore makes stage roots overlays of layers extracted in store,
// which builds on the machine share, when this machine can mount them.
// Only for chroot isolation in kiln's own mount namespace
// (sandbox.PrivateMounts).
func WithLayerStore(store *layerstore.Store) Option { return func(o *options) { o.layerStore = store } }

// WithRunOutput sets where RUN commands' output goes (default: discarded).
func WithRunOutput(w io.Writer) Option { return func(o *options) { o.runOutput = w } }

func defaultOptions() options {
	return options{
		compression: layer.Gzip,
		jobs:        runtime.NumCPU(),
		maxLayers:   DefaultMaxLayers,
		progress:    progress.Discard,
		log:         logrus.StandardLogger(),
		httpClient:  http.DefaultClient,
		platform:    v1.Platform{OS: "linux", Architecture: runtime.GOARCH},
	}
}
