package registry

import "github.com/sirupsen/logrus"

type options struct {
	log                  logrus.FieldLogger
	configPaths          []string
	insecureRegistries   []string
	skipVerifyRegistries []string
	insecurePull         bool
	insecurePush         bool
	skipVerifyPull       bool
	skipVerifyPush       bool
	registryCAs          map[string][]string // registry as given -> CA files
	cacheDir             string
	jobs                 int
	userAgent            string
}

// Option configures a Client.
type Option func(*options)

// WithLogger sets where the client logs; the default is logrus's standard
// logger.
func WithLogger(log logrus.FieldLogger) Option {
	return func(o *options) { o.log = log }
}

// WithDockerConfigPaths replaces the list of docker config.json files
// searched for credentials (see DefaultDockerConfigPaths).
func WithDockerConfigPaths(paths ...string) Option {
	return func(o *options) { o.configPaths = paths }
}

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
