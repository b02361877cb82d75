package registry

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/testregistry"
)

func TestPlainHTTPOnlyWhenAllowed(t *testing.T) {
	reg := testregistry.Start(t)
	img := randomImage(t, 4096, 1)
	seed(t, reg, "team/app:v1", img)
	ref := reg.Ref("team/app:v1")

	for _, tc := range []struct {
		name           string
		opts           []Option
		pullOK, pushOK bool
	}{
		{"default", nil, false, false},
		{"insecure registry", []Option{WithInsecureRegistries(reg.Host)}, true, true},
		{"another insecure registry", []Option{WithInsecureRegistries("127.0.0.1:1")}, false, false},
		{"insecure pull", []Option{WithInsecurePull(true)}, true, false},
		{"insecure push", []Option{WithInsecurePush(true)}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newClient(t, tc.opts...)
			_, err := c.Pull(t.Context(), ref, v1.Platform{})
			checkAllowed(t, "pull", err, tc.pullOK, "plain HTTP to registry", "not marked insecure")
			_, err = c.Push(t.Context(), img, []string{ref})
			checkAllowed(t, "push", err, tc.pushOK, "plain HTTP to registry", "not marked insecure")
		})
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
