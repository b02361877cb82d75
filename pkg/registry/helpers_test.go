package registry

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/kiln-build/kiln/internal/testregistry"
)

// newClient builds a client that reads no docker config nor credential
// variables unless opts say otherwise (the machine's own must not leak
// into tests), retries after a millisecond, and whose log entries, debug
// included, are in the returned hook.
func newClient(t *testing.T, opts ...Option) (*Client, *test.Hook) {
	t.Helper()
	log, hook := test.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	base := []Option{WithLogger(log), WithDockerConfigPaths(), WithCredentialEnv(envMap(nil)), withRetryDelay(time.Millisecond)}
	c, err := New(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c, hook
}

// withRetryDelay sets the first retry's delay, for tests that provoke
// retries.
func withRetryDelay(d time.Duration) Option {
	return func(o *options) { o.retryDelay = d }
}

// envMap is an environment holding only m.
func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// seed pushes img to reg as repoTag without the code under test.
func seed(t *testing.T, reg *testregistry.Registry, repoTag string, img v1.Image) {
	t.Helper()
	ref, err := name.ParseReference(reg.Ref(repoTag))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, reg.RemoteOptions()...); err != nil {
		t.Fatalf("seeding %s: %v", ref, err)
	}
}

func randomImage(t *testing.T, layerSize, layers int64) v1.Image {
	t.Helper()
	img, err := random.Image(layerSize, layers)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// remoteDigest is the digest repoTag points at in reg, read without the code
// under test.
func remoteDigest(t *testing.T, reg *testregistry.Registry, repoTag string) v1.Hash {
	t.Helper()
	ref, err := name.ParseReference(reg.Ref(repoTag))
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(ref, reg.RemoteOptions()...)
	if err != nil {
		t.Fatalf("HEAD %s: %v", ref, err)
	}
	return desc.Digest
}

func mustDigest(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// countRequests counts the requests reg received with method whose path
// contains part.
func countRequests(reg *testregistry.Registry, method, part string) int {
	n := 0
	for _, r := range reg.Requests() {
		if r.Method == method && strings.Contains(r.Path, part) {
			n++
		}
	}
	return n
}

// writeDockerConfig writes a config.json with the given "auths" entries and
// returns its path.
func writeDockerConfig(t *testing.T, auths map[string]map[string]string) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"auths": auths})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// assertErrorContains fails unless err contains every part.
func assertErrorContains(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not contain %q", err, p)
		}
	}
}

// logged reports whether an entry at level contains part.
func logged(hook *test.Hook, level logrus.Level, part string) bool {
	for _, e := range hook.AllEntries() {
		if e.Level == level && strings.Contains(e.Message, part) {
			return true
		}
	}
	return false
}

func mustRegistry(t *testing.T, s string) name.Registry {
	t.Helper()
	reg, err := name.NewRegistry(s)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// withHosts makes the client connect to hosts[addr] when it dials addr
// ("host:port"), as an /etc/hosts entry would: tests reach registries on
// 127.0.0.1 under names that are not loopback addresses.
func withHosts(hosts map[string]string) Option {
	return func(o *options) {
		var d net.Dialer
		o.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if to, ok := hosts[addr]; ok {
				addr = to
			}
			return d.DialContext(ctx, network, addr)
		}
	}
}
