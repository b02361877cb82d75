package testregistry

import (
	"crypto/tls"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestTokenAccountLimitedToProject(t *testing.T) {
	reg := Start(t, WithTokenAuth("ci", "ci-secret"), WithTokenAccount("robot$team+ci", "robot-secret", "team", "pull", "push"))
	img := pushRandom(t, reg, "other/app:v1")
	robot := []remote.Option{remote.WithTransport(reg.transport), remote.WithAuth(&authn.Basic{Username: "robot$team+ci", Password: "robot-secret"})}

	if err := remote.Write(ref(t, reg, "team/app:v1"), img, robot...); err != nil {
		t.Fatalf("robot push to its project: %v", err)
	}
	_, err := remote.Image(ref(t, reg, "other/app:v1"), robot...)
	assertStatus(t, err, http.StatusUnauthorized)
	if !slices.Contains(reg.TokenScopes(), "repository:team/app:push,pull") {
		t.Fatalf("scopes %q lack the push scope", reg.TokenScopes())
	}
}

func TestForbiddenDenials(t *testing.T) {
	reg := Start(t, WithTokenAuth("ci", "ci-secret"), WithTokenAccount("reader", "reader-secret", "team", "pull"), WithForbiddenDenials())
	img := pushRandom(t, reg, "team/app:v1")
	reader := []remote.Option{remote.WithTransport(reg.transport), remote.WithAuth(&authn.Basic{Username: "reader", Password: "reader-secret"})}

	assertSameImage(t, pull(t, reg, "team/app:v1", reader...), img)
	err := remote.Write(ref(t, reg, "team/app:v2"), img, reader...)
	assertStatus(t, err, http.StatusForbidden)
	if !strings.Contains(err.Error(), "DENIED") {
		t.Fatalf("error %v lacks DENIED", err)
	}
	// Anonymous callers still get 401: they are not authenticated.
	_, err = remote.Image(ref(t, reg, "team/app:v1"), remote.WithTransport(reg.transport))
	assertStatus(t, err, http.StatusUnauthorized)
}

func TestProjects(t *testing.T) {
	reg := Start(t, WithProjects("team"))
	pushRandom(t, reg, "team/app:v1")
	err := remote.Write(ref(t, reg, "missing/app:v1"), pull(t, reg, "team/app:v1"), reg.RemoteOptions()...)
	assertStatus(t, err, http.StatusNotFound)
	if !strings.Contains(err.Error(), "project missing not found") {
		t.Fatalf("error %v does not name the project", err)
	}
}

func TestImmutableTags(t *testing.T) {
	reg := Start(t, WithImmutableTags())
	pushRandom(t, reg, "team/app:v1")
	other, err := remote.Image(ref(t, reg, "team/app:v1"), reg.RemoteOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref(t, reg, "team/app:v2"), other, reg.RemoteOptions()...); err != nil {
		t.Fatalf("a new tag: %v", err)
	}
	err = remote.Write(ref(t, reg, "team/app:v1"), randomImage(t), reg.RemoteOptions()...)
	assertStatus(t, err, http.StatusPreconditionFailed)
	if !strings.Contains(err.Error(), "Failed to process request due to 'team/app:v1' configured as immutable.") {
		t.Fatalf("error %v is not Harbor's", err)
	}
}

func TestClientCertAuth(t *testing.T) {
	reg := Start(t, WithClientCertAuth())
	img := pushRandom(t, reg, "team/app:v1") // RemoteOptions present the certificate
	assertSameImage(t, pull(t, reg, "team/app:v1", reg.RemoteOptions()...), img)

	noCert := reg.transport.Clone()
	noCert.TLSClientConfig.Certificates = nil
	_, err := remote.Image(ref(t, reg, "team/app:v1"), remote.WithTransport(noCert))
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("pull without a client certificate: %v", err)
	}
	if _, err := tls.LoadX509KeyPair(reg.ClientCertFile, reg.ClientKeyFile); err != nil {
		t.Fatalf("client certificate files: %v", err)
	}
}

func TestRequestQueryRecorded(t *testing.T) {
	reg := Start(t)
	img := pushRandom(t, reg, "team/base:v1")
	base := pull(t, reg, "team/base:v1", reg.RemoteOptions()...)
	if err := remote.Write(ref(t, reg, "team/app:v1"), base, reg.RemoteOptions()...); err != nil {
		t.Fatal(err)
	}
	for _, r := range reg.Requests() {
		if r.Method == http.MethodPost && strings.Contains(r.Query, "from=team%2Fbase") {
			return
		}
	}
	t.Fatalf("no mount request for %v among %v", img, reg.Requests())
}
