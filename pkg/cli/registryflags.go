package cli

import (
	"fmt"
	"strings"

	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"

	"github.com/kiln-build/kiln/pkg/registry"
)

// connectionFlags say how to reach registries; build, login and manifest
// all have them.
type connectionFlags struct {
	dockerConfig            string
	dockerConfigSet         bool // given, even empty
	insecureRegistries      []string
	skipTLSVerifyRegistries []string
	registryCertificates    []string
	registryClientCerts     []string
}

func addConnectionFlags(fl *pflag.FlagSet, c *connectionFlags) {
	fl.Var(&givenString{value: &c.dockerConfig, given: &c.dockerConfigSet}, "docker-config", "docker config directory (or .json file): searched first for credentials, written by login (default: $DOCKER_CONFIG)")
	fl.StringArrayVar(&c.insecureRegistries, "insecure-registry", nil, "registry HOST[:PORT] reached over plain HTTP (repeatable)")
	fl.StringArrayVar(&c.skipTLSVerifyRegistries, "skip-tls-verify-registry", nil, "registry HOST[:PORT] whose certificate is not verified (repeatable)")
	fl.StringArrayVar(&c.registryCertificates, "registry-certificate", nil, "HOST[:PORT]=CA.pem: trust this CA for that registry (repeatable)")
	fl.StringArrayVar(&c.registryClientCerts, "registry-client-cert", nil, "HOST[:PORT]=CERT.pem,KEY.pem: client certificate (mutual TLS) for that registry (repeatable)")
}

// options turns the connection flags into registry client options.
func (c *connectionFlags) options(log logrus.FieldLogger) ([]registry.Option, error) {
	opts := []registry.Option{
		registry.WithLogger(log),
		registry.WithInsecureRegistries(c.insecureRegistries...),
		registry.WithSkipTLSVerifyRegistries(c.skipTLSVerifyRegistries...),
		registry.WithUserAgent("kiln/" + Version),
	}
	// A --docker-config that names nothing is reported (warned about now,
	// listed if a registry needs credentials), not fatal: a build may need
	// none.
	if c.dockerConfigSet {
		opts = append(opts, registry.WithDockerConfig(c.dockerConfig))
	}
	for _, rc := range c.registryCertificates {
		host, file, ok := strings.Cut(rc, "=")
		if !ok || host == "" || file == "" {
			return nil, fmt.Errorf("invalid --registry-certificate %q: want HOST[:PORT]=PATH", rc)
		}
		opts = append(opts, registry.WithRegistryCertificate(host, file))
	}
	for _, cc := range c.registryClientCerts {
		host, files, _ := strings.Cut(cc, "=")
		cert, key, ok := strings.Cut(files, ",")
		if !ok || host == "" || cert == "" || key == "" {
			return nil, fmt.Errorf("invalid --registry-client-cert %q: want HOST[:PORT]=CERT.pem,KEY.pem", cc)
		}
		opts = append(opts, registry.WithRegistryClientCertificate(host, cert, key))
	}
	return opts, nil
}

// registryFlags are `kiln build`'s registry flags, kaniko's names.
type registryFlags struct {
	connectionFlags
	insecure, insecurePull           bool
	skipTLSVerify, skipTLSVerifyPull bool
	mirrors, registryMaps            []string
	skipDefaultRegistryFallback      bool
	pushRetry, imageDownloadRetry    int
	skipPushPermissionCheck          bool
	pushIgnoreImmutableTagErrors     bool
}

func addRegistryFlags(fl *pflag.FlagSet, r *registryFlags) {
	fl.BoolVar(&r.insecure, "insecure", false, "push over plain HTTP")
	fl.BoolVar(&r.insecurePull, "insecure-pull", false, "pull over plain HTTP")
	fl.BoolVar(&r.skipTLSVerify, "skip-tls-verify", false, "push without verifying TLS certificates")
	fl.BoolVar(&r.skipTLSVerifyPull, "skip-tls-verify-pull", false, "pull without verifying TLS certificates")
	addConnectionFlags(fl, &r.connectionFlags)
	fl.StringArrayVar(&r.mirrors, "registry-mirror", nil, "HOST[:PORT][/PATH] mirror for Docker Hub images, tried before Docker Hub (repeatable, in order)")
	fl.StringArrayVar(&r.registryMaps, "registry-map", nil, "REGISTRY=HOST[:PORT][/PATH]: pull REGISTRY's images through this mirror first (repeatable; several pairs may be joined with \";\")")
	fl.BoolVar(&r.skipDefaultRegistryFallback, "skip-default-registry-fallback", false, "fail a pull no mirror could serve instead of pulling from the image's own registry")
	fl.IntVar(&r.pushRetry, "push-retry", registry.DefaultRetries, "retries of a failed push request or upload (5xx, 429, broken connections), with exponential backoff")
	fl.IntVar(&r.imageDownloadRetry, "image-download-retry", registry.DefaultRetries, "retries of a failed pull request or interrupted layer download, with exponential backoff")
	fl.BoolVar(&r.skipPushPermissionCheck, "skip-push-permission-check", false, "do not check push access to every destination before building")
	fl.BoolVar(&r.pushIgnoreImmutableTagErrors, "push-ignore-immutable-tag-errors", false, "succeed when a destination tag is immutable (Harbor, ECR, Artifact Registry) and leave it alone")
}

// registryOptions turns the registry flags into registry client options.
func registryOptions(f *buildFlags, cacheDir string, log logrus.FieldLogger) ([]registry.Option, error) {
	opts, err := f.connectionFlags.options(log)
	if err != nil {
		return nil, err
	}
	opts = append(opts,
		registry.WithInsecurePull(f.insecurePull),
		registry.WithInsecurePush(f.insecure),
		registry.WithSkipTLSVerifyPull(f.skipTLSVerifyPull),
		registry.WithSkipTLSVerifyPush(f.skipTLSVerify),
		registry.WithRegistryMirrors(f.mirrors...),
		registry.WithSkipDefaultRegistryFallback(f.skipDefaultRegistryFallback),
		registry.WithPushRetries(f.pushRetry),
		registry.WithPullRetries(f.imageDownloadRetry),
		registry.WithIgnoreImmutableTagErrors(f.pushIgnoreImmutableTagErrors),
		registry.WithCacheDir(cacheDir),
	)
	for _, value := range f.registryMaps {
		for _, pair := range strings.Split(value, ";") {
			from, to, ok := strings.Cut(pair, "=")
			if !ok || from == "" || to == "" {
				return nil, fmt.Errorf("invalid --registry-map %q: want REGISTRY=MIRROR", pair)
			}
			opts = append(opts, registry.WithRegistryMap(from, to))
		}
	}
	return opts, nil
}

// givenString is a string flag that records whether it was given, so that
// an empty value (--docker-config "$UNSET") is told from no flag.
type givenString struct {
	value *string
	given *bool
}

func (g *givenString) String() string {
	if g.value == nil {
		return ""
	}
	return *g.value
}

func (g *givenString) Set(s string) error {
	*g.value, *g.given = s, true
	return nil
}

func (g *givenString) Type() string { return "string" }
