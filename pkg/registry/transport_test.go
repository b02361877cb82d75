package registry

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sirupsen/logrus"

	"github.com/kiln-build/kiln/internal/testregistry"
)

// A registry on the cluster network (here a private address that leads to
// the local registry) is reached over plain HTTP only when allowed.
func TestPlainHTTPOnlyWhenAllowed(t *testing.T) {
	reg := testregistry.Start(t)
	const private = "10.200.0.5:5000"
	hosts := withHosts(map[string]string{private: reg.Host})
	img := randomImage(t, 4096, 1)
	seed(t, reg, "team/app:v1", img)
	ref := private + "/team/app:v1"

	for _, tc := range []struct {
		name           string
		opts           []Option
		pullOK, pushOK bool
	}{
		{"default", nil, false, false},
		{"insecure registry", []Option{WithInsecureRegistries(private)}, true, true},
		{"another insecure registry", []Option{WithInsecureRegistries("10.200.0.5:5001")}, false, false},
		{"insecure pull", []Option{WithInsecurePull(true)}, true, false},
		{"insecure push", []Option{WithInsecurePush(true)}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newClient(t, append(tc.opts, hosts)...)
			_, err := c.Pull(t.Context(), ref, v1.Platform{})
			checkAllowed(t, "pull", err, tc.pullOK, "plain HTTP to registry", "not marked insecure")
			_, err = c.Push(t.Context(), img, []string{ref})
			checkAllowed(t, "push", err, tc.pushOK, "plain HTTP to registry", "not marked insecure")
		})
	}
}

// A registry on the loopback interface is reached over plain HTTP without
// being marked insecure, as Docker and go-containerregistry do, and the
// log says so once; a redirect from it to plain HTTP elsewhere is refused.
func TestPlainHTTPOnLoopback(t *testing.T) {
	reg := testregistry.Start(t)
	img := randomImage(t, 4096, 1)
	seed(t, reg, "team/app:v1", img)
	_, port, _ := net.SplitHostPort(reg.Host)

	for _, host := range []string{reg.Host, "localhost:" + port} {
		c, hook := newClient(t)
		if _, err := c.Pull(t.Context(), host+"/team/app:v1", v1.Platform{}); err != nil {
			t.Fatalf("pull from %s: %v", host, err)
		}
		if _, err := c.Push(t.Context(), img, []string{host + "/team/app:v2"}); err != nil {
			t.Fatalf("push to %s: %v", host, err)
		}
		n := 0
		for _, e := range hook.AllEntries() {
			if strings.Contains(e.Message, `Registry "`+host+`" answers over plain HTTP: allowed without --insecure-registry because it is on this machine (loopback)`) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s: the plain-HTTP note was logged %d times, want once: %q", host, n, messages(hook))
		}
	}

	// Marked insecure, it needs no note.
	c, hook := newClient(t, WithInsecureRegistries(reg.Host))
	if _, err := c.Pull(t.Context(), reg.Ref("team/app:v1"), v1.Platform{}); err != nil {
		t.Fatal(err)
	}
	if logged(hook, logrus.InfoLevel, "answers over plain HTTP") {
		t.Errorf("noted for a registry marked insecure: %q", messages(hook))
	}

	for host, want := range map[string]bool{
		"127.0.0.1:5000": true, "127.1.2.3": true, "[::1]:5000": true, "localhost": true, "registry.localhost:80": true,
		"10.0.0.5:5000": false, "192.168.1.1": false, "registry.local:5000": false, "localhost.example.com": false, "example.com": false,
	} {
		if isLoopback(host) != want {
			t.Errorf("isLoopback(%q) = %v", host, !want)
		}
	}
	tr := &loopbackHTTP{registry: reg.Host, inner: http.DefaultTransport, once: new(sync.Once), log: logrus.New()}
	req, _ := http.NewRequest(http.MethodGet, "http://blobs.example.com/x", nil)
	if _, err := tr.RoundTrip(req); err == nil || !strings.Contains(err.Error(), `plain HTTP to registry "blobs.example.com" refused`) {
		t.Errorf("plain HTTP beyond the loopback registry: %v", err)
	}
}

func TestTLSVerification(t *testing.T) {
	reg := testregistry.Start(t, testregistry.WithTLS())
	img := randomImage(t, 4096, 1)
	seed(t, reg, "team/app:v1", img)
	ref := reg.Ref("team/app:v1")

	for _, tc := range []struct {
		name           string
		opts           []Option
		pullOK, pushOK bool
	}{
		{"system roots only", nil, false, false},
		{"registry certificate", []Option{WithRegistryCertificate(reg.Host, reg.CAFile)}, true, true},
		{"certificate for another registry", []Option{WithRegistryCertificate("127.0.0.1:1", reg.CAFile)}, false, false},
		{"skip verify for the registry", []Option{WithSkipTLSVerifyRegistries(reg.Host)}, true, true},
		{"skip verify pull", []Option{WithSkipTLSVerifyPull(true)}, true, false},
		{"skip verify push", []Option{WithSkipTLSVerifyPush(true)}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newClient(t, tc.opts...)
			_, err := c.Pull(t.Context(), ref, v1.Platform{})
			checkAllowed(t, "pull", err, tc.pullOK, "certificate")
			_, err = c.Push(t.Context(), img, []string{ref})
			checkAllowed(t, "push", err, tc.pushOK, "certificate")
		})
	}
}

func checkAllowed(t *testing.T, what string, err error, ok bool, refusal ...string) {
	t.Helper()
	if ok {
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return
	}
	assertErrorContains(t, err, refusal...)
}

// SSL_CERT_FILE is read once per process, when Go first loads the system
// roots, so the test runs itself in a child process that has it set.
func TestSSLCertFile(t *testing.T) {
	if host := os.Getenv("KILN_TEST_SSL_CERT_FILE_REGISTRY"); host != "" {
		c, _ := newClient(t)
		if _, err := c.Pull(t.Context(), host+"/team/app:v1", v1.Platform{}); err != nil {
			t.Fatal(err)
		}
		return
	}
	reg := testregistry.Start(t, testregistry.WithTLS())
	seed(t, reg, "team/app:v1", randomImage(t, 4096, 1))
	cmd := exec.Command(os.Args[0], "-test.run=^TestSSLCertFile$", "-test.v")
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+reg.CAFile, "KILN_TEST_SSL_CERT_FILE_REGISTRY="+reg.Host)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestSSLCertFile") {
		t.Fatalf("pull with SSL_CERT_FILE: %v\n%s", err, out)
	}
}

func TestNewRejectsBadTransportOptions(t *testing.T) {
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		opt  Option
		want []string
	}{
		{WithRegistryCertificate("registry.example:5000", "/nonexistent/ca.pem"), []string{`"registry.example:5000"`, "/nonexistent/ca.pem"}},
		{WithRegistryCertificate("registry.example:5000", notPEM), []string{`"registry.example:5000"`, "no PEM certificate"}},
		{WithInsecureRegistries("bad host"), []string{`insecure registry "bad host"`}},
		{WithSkipTLSVerifyRegistries("https://registry.example"), []string{`skip-TLS-verify registry "https://registry.example"`}},
		{WithJobs(0), []string{"at least 1"}},
	} {
		_, err := New(WithDockerConfigPaths(), tc.opt)
		assertErrorContains(t, err, tc.want...)
	}
}

func TestRegistryNamesNormalized(t *testing.T) {
	c, _ := newClient(t, WithInsecureRegistries("docker.io"), WithSkipTLSVerifyRegistries("localhost:5000"))
	if !c.access.plainHTTP("index.docker.io", pull) {
		t.Error(`"docker.io" does not mark Docker Hub insecure`)
	}
	if !c.access.unverifiedTLS("localhost:5000", push) || c.access.unverifiedTLS("localhost:5001", push) {
		t.Error("skip-verify applies to the wrong registries")
	}
}
