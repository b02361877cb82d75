package testregistry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/bcrypt"

	// Storage driver and access controllers register themselves by name.
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/auth/token"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

// Registry is a running registry.
type Registry struct {
	// Host is "127.0.0.1:PORT".
	Host string
	// CAFile is the PEM file of the CA that signed the server certificate
	// when TLS is on, "" otherwise.
	CAFile string
	// User and Password are the account that auth variants accept.
	User, Password string
	// IdentityToken is, with token auth, a refresh token for User: what
	// `docker login` stores as "identitytoken" in config.json.
	IdentityToken string
	// DockerConfigDir holds a config.json with User's credentials for Host
	// when auth is on (usable as DOCKER_CONFIG), "" otherwise.
	DockerConfigDir string
	// ClientCertFile and ClientKeyFile are, with WithClientCertAuth, a
	// client certificate the registry accepts and its key (PEM).
	ClientCertFile, ClientKeyFile string

	tokens    *tokenService
	harbor    *harborRules
	transport *http.Transport // for RemoteOptions

	mu       sync.Mutex
	requests []Request
}

// Request is one HTTP request the registry received.
type Request struct {
	Method    string
	Path      string
	Query     string // the raw query: "mount=sha256:...&from=team/base"
	UserAgent string
}

type authKind int

const (
	noAuth authKind = iota
	basicAuth
	tokenAuth
)

type options struct {
	tls            bool
	clientCerts    bool
	auth           authKind
	user, password string
	accounts       map[string]account // besides user, with token auth
	harbor         harborRules
}

// Option configures a Registry.
type Option func(*options)

// WithTLS serves HTTPS with a certificate for 127.0.0.1 and localhost signed
// by a CA generated for this registry (see Registry.CAFile).
func WithTLS() Option {
	return func(o *options) { o.tls = true }
}

// WithBasicAuth requires HTTP basic auth against an htpasswd (bcrypt) file
// holding one account.
func WithBasicAuth(user, password string) Option {
	return func(o *options) { o.auth, o.user, o.password = basicAuth, user, password }
}

// WithTokenAuth requires bearer tokens from a token service served at
// https://HOST/service/token, on the registry's own host:port as Harbor does.
// user gets every action it asks for, anonymous callers get pull on
// repositories under "public/", a wrong password gets 401. Token auth
// implies TLS.
func WithTokenAuth(user, password string) Option {
	return func(o *options) { o.auth, o.user, o.password, o.tls = tokenAuth, user, password, true }
}

// WithTokenAccount adds, with WithTokenAuth, an account that may do only
// actions (such as "pull", "push") on the repositories under project, like
// a Harbor robot account; its name may hold "$" ("robot$team+ci").
func WithTokenAccount(user, password, project string, actions ...string) Option {
	return func(o *options) {
		if o.accounts == nil {
			o.accounts = map[string]account{}
		}
		o.accounts[user] = account{password: password, prefix: project, actions: actions}
	}
}

// WithClientCertAuth requires TLS client certificates signed by the
// registry's CA (see Registry.ClientCertFile); implies TLS.
func WithClientCertAuth() Option {
	return func(o *options) { o.clientCerts, o.tls = true, true }
}

// WithProjects makes the registry hold repositories only under these
// projects, as Harbor does (Huawei SWR calls them organizations): a request
// for a repository elsewhere is answered 404 NOT_FOUND.
func WithProjects(projects ...string) Option {
	return func(o *options) { o.harbor.projects = append(o.harbor.projects, projects...) }
}

// WithImmutableTags refuses to move an existing tag, with Harbor's 412
// answer and message.
func WithImmutableTags() Option {
	return func(o *options) { o.harbor.immutable = true }
}

// WithForbiddenDenials answers 403 DENIED, as Huawei SWR and Harbor 1.x do,
// to an authenticated caller the registry refuses (distribution answers
// 401 with an "insufficient_scope" challenge). Needs WithTokenAuth.
func WithForbiddenDenials() Option {
	return func(o *options) { o.harbor.forbidden = true }
}

const (
	tokenPath        = "/service/token"
	tokenServiceName = "testregistry"
	tokenIssuer      = "testregistry-token-issuer"
)

// Start starts a registry that stops when the test ends.
func Start(t testing.TB, opts ...Option) *Registry {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	quietDistribution()

	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testregistry: listening: %v", err)
	}
	t.Cleanup(func() { ln.Close() }) // if Start fails before serving; a no-op after Shutdown
	r := &Registry{Host: ln.Addr().String(), User: o.user, Password: o.password}

	cfg := &configuration.Configuration{}
	cfg.Storage = configuration.Storage{
		"filesystem": configuration.Parameters{"rootdirectory": filepath.Join(dir, "data")},
		// The purger is a goroutine that would outlive the test.
		"maintenance": configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}},
	}
	cfg.HTTP.Secret = "testregistry-upload-state-secret"

	mux := http.NewServeMux()
	switch o.auth {
	case basicAuth:
		cfg.Auth = configuration.Auth{"htpasswd": configuration.Parameters{
			"realm": "testregistry",
			"path":  writeHtpasswd(t, dir, o.user, o.password),
		}}
	case tokenAuth:
		accounts := map[string]account{o.user: {password: o.password}}
		for u, a := range o.accounts {
			accounts[u] = a
		}
		ts, jwks, err := newTokenService(tokenIssuer, tokenServiceName, accounts)
		if err != nil {
			t.Fatalf("testregistry: token service: %v", err)
		}
		jwksFile := filepath.Join(dir, "jwks.json")
		if err := os.WriteFile(jwksFile, jwks, 0o600); err != nil {
			t.Fatalf("testregistry: %v", err)
		}
		cfg.Auth = configuration.Auth{"token": configuration.Parameters{
			"realm":             "https://" + r.Host + tokenPath,
			"service":           tokenServiceName,
			"issuer":            tokenIssuer,
			"jwks":              jwksFile,
			"signingalgorithms": []any{tokenAlgorithm},
		}}
		r.tokens = ts
		r.IdentityToken = ts.newRefreshToken(o.user)
		mux.Handle(tokenPath, ts)
	}
	if o.auth != noAuth {
		r.DockerConfigDir = writeDockerConfig(t, dir, r.Host, o.user, o.password)
	}

	app := handlers.NewApp(context.Background(), cfg)
	r.harbor = &o.harbor
	r.harbor.tags = map[string]bool{}
	r.harbor.tokens = r.tokens
	mux.Handle("/", r.harbor.wrap(app))

	conns := &connTracker{fresh: map[net.Conn]struct{}{}}
	srv := &http.Server{
		Handler:           r.record(mux),
		ReadHeaderTimeout: 10 * time.Second,
		// Handshake failures are what TLS tests provoke; they are not news.
		ErrorLog:  log.New(io.Discard, "", 0),
		ConnState: conns.track,
	}
	var (
		served     net.Listener = ln
		caPEM      []byte
		clientCert *tls.Certificate
	)
	if o.tls {
		ca, err := newCA()
		if err != nil {
			t.Fatalf("testregistry: %v", err)
		}
		cert, err := ca.serverCert()
		if err != nil {
			t.Fatalf("testregistry: %v", err)
		}
		r.CAFile = filepath.Join(dir, "ca.pem")
		if err := os.WriteFile(r.CAFile, ca.certPEM, 0o644); err != nil {
			t.Fatalf("testregistry: %v", err)
		}
		caPEM = ca.certPEM
		tlsConfig := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if o.clientCerts {
			pair, certPEM, keyPEM, err := ca.clientCert()
			if err != nil {
				t.Fatalf("testregistry: %v", err)
			}
			r.ClientCertFile, r.ClientKeyFile = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
			if err := os.WriteFile(r.ClientCertFile, certPEM, 0o644); err != nil {
				t.Fatalf("testregistry: %v", err)
			}
			if err := os.WriteFile(r.ClientKeyFile, keyPEM, 0o600); err != nil {
				t.Fatalf("testregistry: %v", err)
			}
			clientCert = &pair
			tlsConfig.ClientCAs = x509.NewCertPool()
			tlsConfig.ClientCAs.AddCert(ca.cert)
			tlsConfig.ClientAuth = tls.RequireAndVerifyClientCert
		}
		served = tls.NewListener(ln, tlsConfig)
	}
	r.transport = clientTransport(caPEM, clientCert)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(served) // returns http.ErrServerClosed on Shutdown
	}()
	t.Cleanup(func() {
		shutdownCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
		defer stop()
		conns.closeFresh()
		if err := srv.Shutdown(shutdownCtx); err != nil {
			t.Errorf("testregistry: shutting down %s: %v", r.Host, err)
		}
		<-done
		r.transport.CloseIdleConnections()
		if err := app.Shutdown(); err != nil {
			t.Errorf("testregistry: shutting down %s: %v", r.Host, err)
		}
	})
	return r
}

// Ref returns "HOST/repoTag", e.g. Ref("library/busybox:latest").
func (r *Registry) Ref(repoTag string) string {
	return r.Host + "/" + repoTag
}

// Requests returns the requests received so far, token requests included,
// in the order they arrived.
func (r *Registry) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.requests...)
}

// TokenScopes returns the scopes asked of the token service so far, in
// order ("repository:team/app:pull,push").
func (r *Registry) TokenScopes() []string {
	if r.tokens == nil {
		return nil
	}
	r.tokens.mu.Lock()
	defer r.tokens.mu.Unlock()
	return append([]string(nil), r.tokens.scopes...)
}

// TokensIssued is the number of bearer tokens the token service handed out
// (0 without token auth): each is one auth round trip.
func (r *Registry) TokensIssued() int64 {
	if r.tokens == nil {
		return 0
	}
	return r.tokens.issued.Load()
}

func (r *Registry) record(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.requests = append(r.requests, Request{Method: req.Method, Path: req.URL.Path, Query: req.URL.RawQuery, UserAgent: req.UserAgent()})
		r.mu.Unlock()
		next.ServeHTTP(w, req)
	})
}

// connTracker knows the connections that have not sent a request yet. Client
// transports open spare connections they may never use; Shutdown waits five
// seconds for each, and closing them interrupts no request.
type connTracker struct {
	mu    sync.Mutex
	fresh map[net.Conn]struct{}
}

func (c *connTracker) track(conn net.Conn, state http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if state == http.StateNew {
		c.fresh[conn] = struct{}{}
	} else {
		delete(c.fresh, conn)
	}
}

func (c *connTracker) closeFresh() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for conn := range c.fresh {
		conn.Close()
	}
}

var quietOnce sync.Once

// quietDistribution: see the package comment.
func quietDistribution() {
	quietOnce.Do(func() {
		if !logrus.IsLevelEnabled(logrus.DebugLevel) {
			logrus.SetOutput(io.Discard)
		}
	})
}

func writeHtpasswd(t testing.TB, dir, user, password string) string {
	t.Helper()
	// The lowest cost keeps each authenticated request cheap in tests.
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatalf("testregistry: hashing password: %v", err)
	}
	path := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(path, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatalf("testregistry: %v", err)
	}
	return path
}

// writeDockerConfig writes DIR/docker/config.json as `docker login` would.
func writeDockerConfig(t testing.TB, dir, host, user, password string) string {
	t.Helper()
	cfg := map[string]any{"auths": map[string]any{
		host: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + password))},
	}}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatalf("testregistry: %v", err)
	}
	configDir := filepath.Join(dir, "docker")
	if err := os.MkdirAll(configDir, 0o700); err != nil {
		t.Fatalf("testregistry: %v", err)
	}
	if err := os.WriteFile(filepath.Join(configDir, "config.json"), b, 0o600); err != nil {
		t.Fatalf("testregistry: %v", err)
	}
	return configDir
}
