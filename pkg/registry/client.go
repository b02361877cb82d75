package registry

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sirupsen/logrus"

	"github.com/kiln-build/kiln/pkg/progress"
)

const defaultJobs = 4

// Client pulls and pushes images. It is safe for concurrent use.
type Client struct {
	log             logrus.FieldLogger
	keychain        *keychain
	transports      *transports
	access          accessPolicy
	mirrors         map[string][]mirror // by the registry they serve
	skipFallback    bool
	pullRetries     int
	pushRetries     int
	retryDelay      time.Duration
	ignoreImmutable bool
	cacheDir        string
	jobs            int
	userAgent       string

	// loopbackNoted holds a *sync.Once per loopback registry reached over
	// plain HTTP without being marked insecure, to say so once.
	loopbackNoted sync.Map

	progress progress.Sink

	// pendingFills are layer cache entries being committed; cleanedDirs
	// the cache directories whose dead partial entries were removed.
	pendingFills sync.WaitGroup
	cleanedDirs  sync.Map
	// preuploads are layers being uploaded ahead of their push.
	preuploads sync.WaitGroup
}

// Wait waits for the work the client does in the background (layer cache
// entries being written to disk).
func (c *Client) Wait() {
	c.pendingFills.Wait()
	c.preuploads.Wait()
}

// New builds a Client. It reads the credential sources and the registry
// certificates now, so that a bad one fails before any build work.
func New(opts ...Option) (*Client, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	// remote rejects a job count below 1 only once a transfer has started.
	if o.jobs < 1 {
		return nil, fmt.Errorf("registry jobs must be at least 1, not %d", o.jobs)
	}
	if o.pullRetries < 0 || o.pushRetries < 0 {
		return nil, fmt.Errorf("retries cannot be negative (pull %d, push %d)", o.pullRetries, o.pushRetries)
	}
	access, err := newAccessPolicy(&o)
	if err != nil {
		return nil, err
	}
	cas, err := normalizedCAs(o.registryCAs)
	if err != nil {
		return nil, err
	}
	transports, err := newTransports(cas, o.clientCerts, o.dial)
	if err != nil {
		return nil, err
	}
	mirrors, err := parseMirrors(o.mirrors)
	if err != nil {
		return nil, err
	}
	if o.env == nil {
		// A copy: the variables may be scrubbed from the process
		// (ScrubCredentialEnv) once read.
		o.env = environSnapshot()
	}
	if o.progress == nil {
		o.progress = progress.NewLog(o.log)
	}
	places, notes := o.configPlaces()
	kc := newKeychain(places, notes, o.env, o.log)
	return &Client{
		log:             o.log,
		keychain:        kc,
		transports:      transports,
		access:          access,
		mirrors:         mirrors,
		skipFallback:    o.skipFallback,
		pullRetries:     o.pullRetries,
		pushRetries:     o.pushRetries,
		retryDelay:      o.retryDelay,
		ignoreImmutable: o.ignoreImmutable,
		cacheDir:        o.cacheDir,
		jobs:            o.jobs,
		userAgent:       o.userAgent,
		progress:        o.progress,
	}, nil
}

// Keychain returns the credentials the client uses, for other
// go-containerregistry calls.
func (c *Client) Keychain() authn.Keychain {
	return c.keychain
}

// direction tells pulls from pushes: kaniko's flags allow plain HTTP and
// unverified TLS separately for each.
type direction int

const (
	pull direction = iota
	push
)

// registryKey is how the client's per-registry settings are keyed.
func registryKey(reg name.Registry) string {
	return strings.ToLower(reg.RegistryStr())
}

// parseReference parses s, a tag when it names none being ":latest", and
// marks it insecure when plain HTTP is allowed to its registry in direction
// d (go-containerregistry then tries HTTPS first, plain HTTP second).
func (c *Client) parseReference(s string, d direction) (name.Reference, error) {
	ref, err := name.ParseReference(s, name.WeakValidation)
	if err != nil {
		return nil, err
	}
	if c.access.allowsPlainHTTP(registryKey(ref.Context().Registry), d) {
		return name.ParseReference(s, name.WeakValidation, name.Insecure)
	}
	return ref, nil
}

// remoteOptions are the go-containerregistry options for talking to reg in
// direction d.
func (c *Client) remoteOptions(ctx context.Context, reg name.Registry, d direction) []remote.Option {
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(c.keychain),
		remote.WithTransport(c.transport(registryKey(reg), d)),
		remote.WithJobs(c.jobs),
		remote.WithRetryBackoff(c.backoff(d)),
		remote.WithRetryPredicate(c.retryable),
		remote.WithRetryStatusCodes(retryStatusCodes...),
	}
	if c.userAgent != "" {
		opts = append(opts, remote.WithUserAgent(c.userAgent))
	}
	return opts
}
