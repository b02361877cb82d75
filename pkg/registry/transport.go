package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sirupsen/logrus"
)

// accessPolicy says, per registry and direction, whether plain HTTP is
// allowed and whether certificates are verified. Registries are keyed as
// go-containerregistry names them (name.Registry.RegistryStr), so
// "docker.io" in an option matches "index.docker.io".
type accessPolicy struct {
	insecure, skipVerify           map[string]bool
	insecurePull, insecurePush     bool
	skipVerifyPull, skipVerifyPush bool
}

func newAccessPolicy(o *options) (accessPolicy, error) {
	insecure, err := registrySet("insecure registry", o.insecureRegistries)
	if err != nil {
		return accessPolicy{}, err
	}
	skipVerify, err := registrySet("skip-TLS-verify registry", o.skipVerifyRegistries)
	if err != nil {
		return accessPolicy{}, err
	}
	return accessPolicy{
		insecure:       insecure,
		skipVerify:     skipVerify,
		insecurePull:   o.insecurePull,
		insecurePush:   o.insecurePush,
		skipVerifyPull: o.skipVerifyPull,
		skipVerifyPush: o.skipVerifyPush,
	}, nil
}

// plainHTTP reports whether plain HTTP to registry was allowed explicitly,
// by --insecure-registry, --insecure or --insecure-pull.
func (p accessPolicy) plainHTTP(registry string, d direction) bool {
	return p.insecure[registry] || (d == pull && p.insecurePull) || (d == push && p.insecurePush)
}

// allowsPlainHTTP reports whether registry may be reached over plain HTTP:
// when allowed explicitly, or when it is on this machine (see isLoopback).
// HTTPS is still tried first.
func (p accessPolicy) allowsPlainHTTP(registry string, d direction) bool {
	return p.plainHTTP(registry, d) || isLoopback(registry)
}

// isLoopback reports whether registry ("host[:port]", normalized) is on
// this machine's loopback interface: "localhost", a name under
// ".localhost", 127.0.0.0/8 or ::1. Docker treats 127.0.0.0/8 as insecure
// by default and go-containerregistry (so kaniko) falls back to plain HTTP
// there: traffic on the loopback interface never leaves the host (in a pod,
// the pod's network namespace), so TLS protects nothing on it. Names are
// taken literally, never resolved: a DNS answer cannot downgrade a
// registry to plain HTTP.
func isLoopback(registry string) bool {
	host := registry
	if h, _, err := net.SplitHostPort(registry); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (p accessPolicy) unverifiedTLS(registry string, d direction) bool {
	return p.skipVerify[registry] || (d == pull && p.skipVerifyPull) || (d == push && p.skipVerifyPush)
}

func registrySet(what string, hosts []string) (map[string]bool, error) {
	set := map[string]bool{}
	for _, h := range hosts {
		reg, err := normalizeRegistry(h)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", what, h, err)
		}
		set[reg] = true
	}
	return set, nil
}

func normalizedCAs(cas map[string][]string) (map[string][]string, error) {
	out := map[string][]string{}
	for host, files := range cas {
		reg, err := normalizeRegistry(host)
		if err != nil {
			return nil, fmt.Errorf("registry certificate for %q: %w", host, err)
		}
		out[reg] = append(out[reg], files...)
	}
	return out, nil
}

// normalizeRegistry names a registry as go-containerregistry does
// ("docker.io" is "index.docker.io"), in lower case: host names are not
// case-sensitive.
func normalizeRegistry(host string) (string, error) {
	reg, err := name.NewRegistry(host, name.WeakValidation)
	if err != nil {
		return "", err
	}
	return strings.ToLower(reg.RegistryStr()), nil
}

// transports holds one http.Transport per TLS configuration, built once and
// shared so that connections are reused: verified against the system roots
// (which honour SSL_CERT_FILE and SSL_CERT_DIR), unverified, and a pair per
// registry with extra CAs or a client certificate. A registry's transport
// also carries the requests it redirects to (blob storage) and its token
// service.
type transports struct {
	verified, unverified *http.Transport
	perRegistry          map[string]transportPair
}

type transportPair struct{ verified, unverified *http.Transport }

func newTransports(registryCAs map[string][]string, clientCerts map[string]clientCertFiles, dial func(context.Context, string, string) (net.Conn, error)) (*transports, error) {
	verified := http.DefaultTransport.(*http.Transport).Clone()
	verified.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if dial != nil {
		verified.DialContext = dial
	}
	unverified := verified.Clone()
	unverified.TLSClientConfig.InsecureSkipVerify = true

	t := &transports{verified: verified, unverified: unverified, perRegistry: map[string]transportPair{}}
	certs := map[string]tls.Certificate{}
	for host, files := range clientCerts {
		reg, err := normalizeRegistry(host)
		if err != nil {
			return nil, fmt.Errorf("registry client certificate for %q: %w", host, err)
		}
		cert, err := tls.LoadX509KeyPair(files.cert, files.key)
		if err != nil {
			return nil, fmt.Errorf("registry client certificate %q (key %q) for %q: %w", files.cert, files.key, host, err)
		}
		certs[reg] = cert
	}
	pools := map[string]*x509.CertPool{}
	for reg, files := range registryCAs {
		pool, err := x509.SystemCertPool()
		if err != nil {
			return nil, fmt.Errorf("loading the system certificates: %w", err)
		}
		for _, f := range files {
			pem, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("registry certificate for %q: %w", reg, err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("registry certificate %q for %q: no PEM certificate in it", f, reg)
			}
		}
		pools[reg] = pool
	}
	custom := map[string]bool{}
	for reg := range pools {
		custom[reg] = true
	}
	for reg := range certs {
		custom[reg] = true
	}
	for reg := range custom {
		pair := transportPair{verified: verified.Clone(), unverified: unverified.Clone()}
		for _, tr := range []*http.Transport{pair.verified, pair.unverified} {
			if pool := pools[reg]; pool != nil {
				tr.TLSClientConfig.RootCAs = pool
			}
			if cert, ok := certs[reg]; ok {
				tr.TLSClientConfig.Certificates = []tls.Certificate{cert}
			}
		}
		t.perRegistry[reg] = pair
	}
	return t, nil
}

// transport returns the round tripper for requests to registry in
// direction d.
func (c *Client) transport(registry string, d direction) http.RoundTripper {
	verified, unverified := c.transports.verified, c.transports.unverified
	if pair, ok := c.transports.perRegistry[registry]; ok {
		verified, unverified = pair.verified, pair.unverified
	}
	tr := verified
	if c.access.unverifiedTLS(registry, d) {
		tr = unverified
	}
	if c.access.plainHTTP(registry, d) {
		return tr
	}
	if isLoopback(registry) {
		once, _ := c.loopbackNoted.LoadOrStore(registry, new(sync.Once))
		return &loopbackHTTP{registry: registry, inner: tr, once: once.(*sync.Once), log: c.log}
	}
	return &httpsOnly{registry: registry, inner: tr}
}

// httpsOnly refuses plain HTTP. go-containerregistry falls back to HTTP on
// its own for private (RFC 1918) addresses and *.local names too; kiln
// allows it there only for registries marked insecure, so that a registry
// in the cluster network is not silently reached unencrypted.
type httpsOnly struct {
	registry string
	inner    http.RoundTripper
}

func (h *httpsOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" {
		return nil, refusePlainHTTP(req, h.registry)
	}
	return h.inner.RoundTrip(req)
}

// loopbackHTTP lets plain HTTP through to a registry on the loopback
// interface (see isLoopback), and says so once per registry. A redirect
// to plain HTTP elsewhere (blob storage, a token service) is refused.
type loopbackHTTP struct {
	registry string
	inner    http.RoundTripper
	once     *sync.Once
	log      logrus.FieldLogger
}

func (l *loopbackHTTP) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" {
		return l.inner.RoundTrip(req)
	}
	if !isLoopback(strings.ToLower(req.URL.Host)) {
		return nil, refusePlainHTTP(req, req.URL.Host)
	}
	resp, err := l.inner.RoundTrip(req)
	// 400 is a TLS server's answer to plain HTTP: the registry speaks
	// HTTPS, and the other attempt of go-containerregistry's ping wins.
	if err == nil && resp.StatusCode != http.StatusBadRequest {
		l.once.Do(func() {
			l.log.Infof("Registry %q answers over plain HTTP: allowed without --insecure-registry because it is on this machine (loopback), as Docker and kaniko do", l.registry)
		})
	}
	return resp, err
}

func refusePlainHTTP(req *http.Request, registry string) error {
	if req.Body != nil {
		req.Body.Close() // a RoundTripper closes the body, even on error
	}
	return &plainHTTPRefusedError{registry: registry}
}

// plainHTTPRefusedError is httpsOnly's refusal.
type plainHTTPRefusedError struct{ registry string }

func (e *plainHTTPRefusedError) Error() string {
	return fmt.Sprintf("plain HTTP to registry %q refused: it is not marked insecure", e.registry)
}
