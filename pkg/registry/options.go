package registry

import (
	"context"
	"net"
	"path/filepath"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/kiln-build/kiln/pkg/progress"
)

type options struct {
	log                  logrus.FieldLogger
	progress             progress.Sink
	configPaths          []string // set by WithDockerConfigPaths
	configPathsSet       bool
	dockerConfig         *string // WithDockerConfig's value
	env                  func(string) (string, bool)
	insecureRegistries   []string
	skipVerifyRegistries []string
	insecurePull         bool
	insecurePush         bool
	skipVerifyPull       bool
	skipVerifyPush       bool
	registryCAs          map[string][]string // registry as given -> CA files
	clientCerts          map[string]clientCertFiles
	mirrors              []mirrorFlag
	skipFallback         bool
	pullRetries          int
	pushRetries          int
	retryDelay           time.Duration
	ignoreImmutable      bool
	cacheDir             string
	jobs                 int
	userAgent            string
	// dial replaces the transports' dialer; nil is net.Dialer's. Tests
	// use it to reach a local registry under another name.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

type clientCertFiles struct{ cert, key string }

// mirrorFlag is one WithRegistryMirrors or WithRegistryMap value, parsed in
// New so that a bad one is reported with the others.
type mirrorFlag struct {
	from string // "" for Docker Hub
	to   string
}

// Option configures a Client.
type Option func(*options)

func defaultOptions() options {
	return options{
		log:         logrus.StandardLogger(),
		jobs:        defaultJobs,
		pullRetries: DefaultRetries,
		pushRetries: DefaultRetries,
		retryDelay:  time.Second,
	}
}

// WithLogger sets where the client logs; the default is logrus's standard
// logger.
func WithLogger(log logrus.FieldLogger) Option {
	return func(o *options) { o.log = log }
}

// WithDockerConfigPaths replaces the list of docker config.json (or
// containers auth.json) files searched for credentials, in order (see
// DockerConfigPaths).
func WithDockerConfigPaths(paths ...string) Option {
	return func(o *options) { o.configPaths, o.configPathsSet = paths, true }
}

// WithDockerConfig searches dir first for credentials, instead of
// $DOCKER_CONFIG: --docker-config, a directory holding config.json (or a
// Kubernetes Secret's .dockerconfigjson) or a .json file. The other places
// of DockerConfigPaths follow. An empty dir is reported as such, and
// $DOCKER_CONFIG is used.
func WithDockerConfig(dir string) Option {
	return func(o *options) { o.dockerConfig, o.configPaths, o.configPathsSet = &dir, nil, false }
}

// configPlaces are the docker config files to search, and notes on why
// --docker-config or $DOCKER_CONFIG added none.
func (o *options) configPlaces() ([]configPlace, []string) {
	if !o.configPathsSet {
		return configPlaces(o.dockerConfig, o.env)
	}
	places := make([]configPlace, len(o.configPaths))
	for i, p := range o.configPaths {
		places[i] = configPlace{path: p, inDir: filepath.Base(p) == "config.json"}
	}
	return places, nil
}

// WithCredentialEnv makes the client read the credential environment
// variables (KILN_REGISTRY_<HOST>_USER and _PASSWORD, DOCKER_AUTH_CONFIG,
// GitLab's CI_REGISTRY variables) through lookup instead of os.LookupEnv.
func WithCredentialEnv(lookup func(key string) (string, bool)) Option {
	return func(o *options) { o.env = lookup }
}

// WithProgress sends transfers (pulls and pushes) and the images pulled and
// pushed to sink (default: progress lines in the log).
func WithProgress(sink progress.Sink) Option { return func(o *options) { o.progress = sink } }

// WithInsecureRegistries allows plain HTTP, for pulls and pushes, to these
// registries ("host" or "host:port").
func WithInsecureRegistries(hosts ...string) Option {
	return func(o *options) { o.insecureRegistries = append(o.insecureRegistries, hosts...) }
}

// WithSkipTLSVerifyRegistries accepts any certificate from these registries.
func WithSkipTLSVerifyRegistries(hosts ...string) Option {
	return func(o *options) { o.skipVerifyRegistries = append(o.skipVerifyRegistries, hosts...) }
}

// WithInsecurePull allows plain HTTP for every pull.
func WithInsecurePull(insecure bool) Option {
	return func(o *options) { o.insecurePull = insecure }
}

// WithInsecurePush allows plain HTTP for every push.
func WithInsecurePush(insecure bool) Option {
	return func(o *options) { o.insecurePush = insecure }
}

// WithSkipTLSVerifyPull accepts any certificate when pulling.
func WithSkipTLSVerifyPull(skip bool) Option {
	return func(o *options) { o.skipVerifyPull = skip }
}

// WithSkipTLSVerifyPush accepts any certificate when pushing.
func WithSkipTLSVerifyPush(skip bool) Option {
	return func(o *options) { o.skipVerifyPush = skip }
}

// WithRegistryCertificate trusts the CA certificates in the PEM file caFile,
// besides the system roots, for the registry host ("host" or "host:port").
// It may be given several times, also for the same registry.
func WithRegistryCertificate(host, caFile string) Option {
	return func(o *options) {
		if o.registryCAs == nil {
			o.registryCAs = map[string][]string{}
		}
		o.registryCAs[host] = append(o.registryCAs[host], caFile)
	}
}

// WithRegistryClientCertificate presents the certificate in certFile, with
// the private key in keyFile (both PEM), to the registry host: mutual TLS.
func WithRegistryClientCertificate(host, certFile, keyFile string) Option {
	return func(o *options) {
		if o.clientCerts == nil {
			o.clientCerts = map[string]clientCertFiles{}
		}
		o.clientCerts[host] = clientCertFiles{cert: certFile, key: keyFile}
	}
}

// WithRegistryMirrors pulls Docker Hub images through these mirrors, tried
// in order before Docker Hub itself. A mirror is "host[:port]" or
// "host[:port]/path", the path prefixing every repository: a Harbor
// proxy-cache project is "harbor.example.com/dockerhub-proxy".
func WithRegistryMirrors(mirrors ...string) Option {
	return func(o *options) {
		for _, m := range mirrors {
			o.mirrors = append(o.mirrors, mirrorFlag{to: m})
		}
	}
}

// WithRegistryMap pulls images of registry from through mirror, which has
// the form of a WithRegistryMirrors mirror. Several mirrors of one registry
// are tried in the order given.
func WithRegistryMap(from, mirror string) Option {
	return func(o *options) { o.mirrors = append(o.mirrors, mirrorFlag{from: from, to: mirror}) }
}

// WithSkipDefaultRegistryFallback fails a pull that no mirror could serve
// instead of trying the image's own registry.
func WithSkipDefaultRegistryFallback(skip bool) Option {
	return func(o *options) { o.skipFallback = skip }
}

// WithPullRetries sets how many times a failed pull request or interrupted
// layer download is retried (default DefaultRetries), with exponential
// backoff, on 5xx and 429 answers and on broken connections.
func WithPullRetries(n int) Option {
	return func(o *options) { o.pullRetries = n }
}

// WithPushRetries sets how many times a failed push request or blob upload
// is retried (default DefaultRetries), as WithPullRetries does for pulls.
func WithPushRetries(n int) Option {
	return func(o *options) { o.pushRetries = n }
}

// WithIgnoreImmutableTagErrors makes a push whose tag is immutable in the
// destination (Harbor, ECR, Artifact Registry) succeed with a warning: the
// blobs and the manifest by digest were pushed, the tag was left alone.
func WithIgnoreImmutableTagErrors(ignore bool) Option {
	return func(o *options) { o.ignoreImmutable = ignore }
}

// WithCacheDir keeps pulled layers in dir: each is downloaded on its first
// read and read from disk afterwards, by this build and later ones.
func WithCacheDir(dir string) Option {
	return func(o *options) { o.cacheDir = dir }
}

// WithJobs sets how many blobs are transferred at once per image (default 4).
func WithJobs(n int) Option {
	return func(o *options) { o.jobs = n }
}

// WithUserAgent sets the User-Agent of every request.
func WithUserAgent(ua string) Option {
	return func(o *options) { o.userAgent = ua }
}
