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

	"github.com/google/go-containerregistry/pkg/name"
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

func (p accessPolicy) plainHTTP(registry string, d direction) bool {
	return p.insecure[registry] || (d == pull && p.insecurePull) || (d == push && p.insecurePush)
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
	return &httpsOnly{registry: registry, inner: tr}
}

// httpsOnly refuses plain HTTP. go-containerregistry falls back to HTTP on
// its own for localhost, 127.0.0.1, private (RFC 1918) addresses and *.local
// names; kiln allows it only for registries marked insecure, so that a
// registry in the cluster network is not silently reached unencrypted.
type httpsOnly struct {
	registry string
	inner    http.RoundTripper
}

func (h *httpsOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" {
		if req.Body != nil {
			req.Body.Close() // a RoundTripper closes the body, even on error
		}
		return nil, &plainHTTPRefusedError{registry: h.registry}
	}
	return h.inner.RoundTrip(req)
}

// plainHTTPRefusedError is httpsOnly's refusal.
type plainHTTPRefusedError struct{ registry string }

func (e *plainHTTPRefusedError) Error() string {
	return fmt.Sprintf("plain HTTP to registry %q refused: it is not marked insecure", e.registry)
}
