package testregistry

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// RemoteOptions are go-containerregistry options that reach the registry as
// User (anonymously without auth) and trust its CA when TLS is on, for
// tests that seed or inspect content independently of the code under test.
func (r *Registry) RemoteOptions() []remote.Option {
	opts := []remote.Option{remote.WithTransport(r.transport)}
	if r.User != "" {
		opts = append(opts, remote.WithAuth(&authn.Basic{Username: r.User, Password: r.Password}))
	}
	return opts
}

// clientTransport trusts caPEM, or the system roots when it is nil, and
// presents cert when it is not nil.
func clientTransport(caPEM []byte, cert *tls.Certificate) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caPEM != nil {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(caPEM)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		if cert != nil {
			tr.TLSClientConfig.Certificates = []tls.Certificate{*cert}
		}
	}
	return tr
}
