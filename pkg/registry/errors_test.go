package registry

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sirupsen/logrus"

	"github.com/kiln-build/kiln/internal/faultproxy"
	"github.com/kiln-build/kiln/internal/testregistry"
)

// assertKind fails unless err is an *Error of kind whose message holds
// every part.
func assertKind(t *testing.T, err error, kind Kind, parts ...string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *registry.Error", err, err)
	}
	if e.Kind != kind {
		t.Fatalf("kind %d, want %d: %v", e.Kind, kind, err)
	}
	assertErrorContains(t, err, parts...)
}

func TestErrorUnauthorized(t *testing.T) {
	reg := testregistry.Start(t, testregistry.WithBasicAuth("ci", "ci-secret"))
	img := randomImage(t, 1024, 1)
	dest := reg.Ref("team/app:v1")
	user, password := CredentialEnvVars(reg.Host)

	anonymous, _ := newClient(t, WithInsecureRegistries(reg.Host))
	_, err := anonymous.Push(t.Context(), img, []string{dest})
	assertKind(t, err, KindUnauthorized,
		`pushing "`+dest+`": registry "`+reg.Host+`" answered 401 Unauthorized for repository "team/app"`,
		"no credentials (searched environment variables "+user+" and "+password,
		"`kiln login "+reg.Host+"`")

	wrong := writeDockerConfig(t, map[string]map[string]string{reg.Host: {"auth": basic("ci", "wrong-secret")}})
	c, hook := newClient(t, WithInsecureRegistries(reg.Host), WithDockerConfigPaths(wrong))
	_, err = c.Push(t.Context(), img, []string{dest})
	assertKind(t, err, KindUnauthorized,
		`credentials from docker config "`+wrong+`" key "`+reg.Host+`"`,
		`The registry rejected these credentials, or they may not push to "team/app"`)
	assertNoSecretLogged(t, hook, "wrong-secret")
	if strings.Contains(err.Error(), "wrong-secret") {
		t.Fatalf("the error holds the password: %v", err)
	}
}

func TestErrorDenied(t *testing.T) {
	reg := testregistry.Start(t, testregistry.WithTokenAuth("ci", "ci-secret"),
		testregistry.WithTokenAccount("reader", "reader-secret", "team", "pull"), testregistry.WithForbiddenDenials())
	cfg := writeDockerConfig(t, map[string]map[string]string{reg.Host: {"auth": basic("reader", "reader-secret")}})
	c, _ := newClient(t, WithRegistryCertificate(reg.Host, reg.CAFile), WithDockerConfigPaths(cfg))
	_, err := c.Push(t.Context(), randomImage(t, 1024, 1), []string{reg.Ref("team/app:v1")})
	assertKind(t, err, KindDenied,
		`answered 403 Forbidden: the account may not push to repository "team/app"`,
		`credentials from docker config "`+cfg+`"`,
		`the right to push to project "team"`, `organization "team"`)
}

func TestErrorProjectMissing(t *testing.T) {
	reg := testregistry.Start(t, testregistry.WithProjects("team"))
	c, _ := newClient(t, WithInsecureRegistries(reg.Host))
	_, err := c.Push(t.Context(), randomImage(t, 1024, 1), []string{reg.Ref("tema/app:v1")})
	assertKind(t, err, KindNotFound,
		`404 Not Found for repository "tema/app": its project or organization "tema" probably does not exist`,
		`Create the Harbor project or SWR organization "tema" first`)

	_, err = c.Pull(t.Context(), reg.Ref("team/app:v1"), v1.Platform{})
	assertKind(t, err, KindNotFound, `pulling "`+reg.Ref("team/app:v1")+`"`, "Check the repository name and the tag")
}

// Two registries that do not share storage behind a load balancer: the
// upload starts on one and continues on the other.
func TestErrorUploadLost(t *testing.T) {
	a, b := testregistry.Start(t), testregistry.Start(t)
	lb := faultproxy.Start(t, []string{"http://" + a.Host, "http://" + b.Host}, faultproxy.WithRoute(func(r *http.Request) int {
		if strings.Contains(r.URL.Path, "/blobs/uploads/") && r.Method != http.MethodPost {
			return 1
		}
		return 0
	}))
	c, _ := newClient(t, WithInsecureRegistries(lb.Host))
	_, err := c.Push(t.Context(), randomImage(t, 1024, 1), []string{lb.Ref("team/app:v1")})
	assertKind(t, err, KindUploadLost, "BLOB_UPLOAD_UNKNOWN", "load-balanced registry needs storage shared by every instance")
}

func TestErrorImmutableTag(t *testing.T) {
	reg := testregistry.Start(t, testregistry.WithImmutableTags())
	dest := reg.Ref("team/app:v1")
	c, _ := newClient(t, WithInsecureRegistries(reg.Host))
	first := randomImage(t, 1024, 1)
	if _, err := c.Push(t.Context(), first, []string{dest}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Push(t.Context(), first, []string{dest}); err != nil {
		t.Fatalf("pushing the same image again: %v", err)
	}
	second := randomImage(t, 1024, 1)
	_, err := c.Push(t.Context(), second, []string{dest})
	assertKind(t, err, KindImmutableTag, "412 Precondition Failed: the tag is immutable", "configured as immutable", "--push-ignore-immutable-tag-errors")

	lenient, hook := newClient(t, WithInsecureRegistries(reg.Host), WithIgnoreImmutableTagErrors(true))
	pushed, err := lenient.Push(t.Context(), second, []string{dest})
	if err != nil {
		t.Fatal(err)
	}
	if !logged(hook, logrus.WarnLevel, `Tag "`+dest+`" is immutable`) {
		t.Fatalf("no warning: %v", messages(hook))
	}
	if got := remoteDigest(t, reg, "team/app:v1"); got != mustDigest(t, first) {
		t.Fatalf("the immutable tag moved to %s", got)
	}
	if pushed[0].DigestStr() != mustDigest(t, second).String() {
		t.Fatalf("pushed %v, want the second image by digest", pushed)
	}
}

func TestErrorTLS(t *testing.T) {
	secure := testregistry.Start(t, testregistry.WithTLS())
	c, _ := newClient(t)
	_, err := c.Pull(t.Context(), secure.Ref("team/app:v1"), v1.Platform{})
	assertKind(t, err, KindUnknownAuthority, `the TLS certificate of registry "`+secure.Host+`" is signed by an unknown authority`,
		"--registry-certificate "+secure.Host+"=ca.pem", "SSL_CERT_FILE or SSL_CERT_DIR")

	// A plain-HTTP registry under a name: only HTTPS is tried. At a
	// private address, go-containerregistry tries plain HTTP too, and kiln
	// refuses it. Either way the hint names the flag and the exact host.
	plain := testregistry.Start(t)
	const named, private = "registry.example.com:5000", "172.20.0.9:5000"
	c, _ = newClient(t, withHosts(map[string]string{named: plain.Host, private: plain.Host}))
	for _, host := range []string{named, private} {
		_, err = c.Pull(t.Context(), host+"/team/app:v1", v1.Platform{})
		assertKind(t, err, KindPlainHTTP, `registry "`+host+`" speaks plain HTTP`, `allow that with --insecure-registry "`+host+`"`)
	}
}

func TestClientCertificates(t *testing.T) {
	reg := testregistry.Start(t, testregistry.WithClientCertAuth())
	seed(t, reg, "team/app:v1", randomImage(t, 1024, 1))
	ca := WithRegistryCertificate(reg.Host, reg.CAFile)

	without, _ := newClient(t, ca)
	_, err := without.Pull(t.Context(), reg.Ref("team/app:v1"), v1.Platform{})
	assertKind(t, err, KindClientCertificate, "requires a client certificate", "--registry-client-cert "+reg.Host+"=client.pem,client-key.pem")

	with, _ := newClient(t, ca, WithRegistryClientCertificate(reg.Host, reg.ClientCertFile, reg.ClientKeyFile))
	img, err := with.Pull(t.Context(), reg.Ref("team/app:v1"), v1.Platform{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := with.Push(t.Context(), img, []string{reg.Ref("team/app:v2")}); err != nil {
		t.Fatal(err)
	}

	_, err = New(WithRegistryClientCertificate(reg.Host, reg.ClientCertFile, reg.CAFile))
	assertErrorContains(t, err, `registry client certificate "`+reg.ClientCertFile+`" (key "`+reg.CAFile+`")`)
}

func TestErrorConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := ln.Addr().String()
	ln.Close()
	c, _ := newClient(t, WithInsecureRegistries(host))
	_, err = c.Pull(t.Context(), host+"/team/app:v1", v1.Platform{})
	assertKind(t, err, KindConnection, `cannot connect to registry "`+host+`": connection refused`, "Check the host and port")
}

// A registry at a private address that refuses the connection is
// unreachable: go-containerregistry also tries plain HTTP there, and kiln
// refusing that attempt must not make it "speak plain HTTP".
func TestErrorConnectionRefusedIsNotPlainHTTP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	const private = "10.200.0.7:5000"
	c, _ := newClient(t, withHosts(map[string]string{private: closed}))
	_, err = c.Pull(t.Context(), private+"/team/app:v1", v1.Platform{})
	assertKind(t, err, KindConnection, `cannot connect to registry "`+private+`": connection refused`, "Check the host and port")
	_, err = c.Push(t.Context(), randomImage(t, 1024, 1), []string{private + "/team/app:v1"})
	assertKind(t, err, KindConnection, `cannot connect to registry "`+private+`": connection refused`)
}

func TestErrorRetriesExhausted(t *testing.T) {
	reg := testregistry.Start(t)
	seed(t, reg, "team/app:v1", randomImage(t, 1024, 1))
	for _, tc := range []struct {
		status int
		kind   Kind
		want   string
	}{
		{http.StatusTooManyRequests, KindRateLimited, "answered 429 Too Many Requests on every retry"},
		{http.StatusServiceUnavailable, KindServer, "answered 503 Service Unavailable on every retry"},
	} {
		proxy := faultproxy.Start(t, []string{"http://" + reg.Host},
			faultproxy.WithRule(faultproxy.Rule{PathContains: "/manifests/", Fault: faultproxy.Status, Status: tc.status}))
		c, hook := newClient(t, WithInsecureRegistries(proxy.Host), WithPullRetries(2))
		_, err := c.Pull(t.Context(), proxy.Ref("team/app:v1"), v1.Platform{})
		assertKind(t, err, tc.kind, tc.want)
		if n := len(proxy.Injected()); n != 3 {
			t.Errorf("%d: %d attempts, want 3 (two retries): %q", tc.status, n, proxy.Injected())
		}
		if !logged(hook, logrus.WarnLevel, "Registry request failed, retrying") {
			t.Errorf("retries not logged: %v", messages(hook))
		}
	}
}

// A name resolution failure cannot be provoked without a DNS server: the
// error is the one net/http returns.
func TestErrorDNS(t *testing.T) {
	c, _ := newClient(t)
	reg := mustRegistry(t, "regsitry.example.com")
	err := &url.Error{Op: "Get", URL: "https://regsitry.example.com/v2/", Err: &net.OpError{Op: "dial", Net: "tcp",
		Err: &net.DNSError{Err: "no such host", Name: "regsitry.example.com", IsNotFound: true}}}
	got := c.explainRef("pulling", reg.Repo("team/app").Tag("v1"), pull, err)
	assertKind(t, got, KindDNS, `pulling "regsitry.example.com/team/app:v1": cannot resolve the host "regsitry.example.com"`, "a typo, a stray space?")
}

func TestErrorNamesQuoted(t *testing.T) {
	c, _ := newClient(t)
	_, err := c.Push(t.Context(), randomImage(t, 1024, 1), []string{"registry.example.com/team/app:v1 "})
	assertErrorContains(t, err, `"registry.example.com/team/app:v1 "`)
	ref, _ := name.ParseReference("registry.example.com/team/app:v1")
	e := c.explainRef("pushing", ref, push, errors.New("x")).(*Error)
	if e.Subject != "registry.example.com/team/app:v1" || e.Repository != "team/app" || e.Registry != "registry.example.com" {
		t.Fatalf("error fields %+v", e)
	}
	if _, err := New(WithDockerConfigPaths(filepath.Join(t.TempDir(), "none.json")), WithRegistryMap("a b", "c")); err == nil {
		t.Fatal("a registry map with a space was accepted")
	}
}

func TestRedactedError(t *testing.T) {
	err := errors.New(`Get "https://s3.example/blob?X-Amz-Signature=abc&X-Amz-Credential=key": Patch "http://r.example/v2/x/blobs/uploads/1?_state=s3cret": EOF`)
	got := redactedError(err)
	want := `Get "https://s3.example/blob?REDACTED": Patch "http://r.example/v2/x/blobs/uploads/1?REDACTED": EOF`
	if got != want {
		t.Fatalf("redactedError = %s, want %s", got, want)
	}
}
