package testregistry

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

func TestPushPullEachVariant(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []Option
	}{
		{"plain", nil},
		{"tls", []Option{WithTLS()}},
		{"basic", []Option{WithBasicAuth("ci", "ci-secret")}},
		{"basic+tls", []Option{WithTLS(), WithBasicAuth("ci", "ci-secret")}},
		{"token", []Option{WithTokenAuth("ci", "ci-secret")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := Start(t, tc.opts...)
			img := pushRandom(t, reg, "team/app:v1")

			got := pull(t, reg, "team/app:v1", reg.RemoteOptions()...)
			assertSameImage(t, got, img)
		})
	}
}

func TestCAFileOnlyWithTLS(t *testing.T) {
	if reg := Start(t); reg.CAFile != "" || reg.DockerConfigDir != "" || reg.User != "" {
		t.Errorf("plain registry has CAFile %q, DockerConfigDir %q, User %q", reg.CAFile, reg.DockerConfigDir, reg.User)
	}
	reg := Start(t, WithTLS())
	b, err := os.ReadFile(reg.CAFile)
	if err != nil || !strings.Contains(string(b), "BEGIN CERTIFICATE") {
		t.Fatalf("CAFile %q: %v %q", reg.CAFile, err, b)
	}
	// Without the CA, the certificate is not trusted.
	_, err = http.Get("https://" + reg.Host + "/v2/")
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("GET without the CA: %v, want a certificate error", err)
	}
}

func TestAuthVariantsRefuseAnonymousAndWrongPassword(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []Option
	}{
		{"basic", []Option{WithBasicAuth("ci", "ci-secret")}},
		{"token", []Option{WithTokenAuth("ci", "ci-secret")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := Start(t, tc.opts...)
			pushRandom(t, reg, "team/app:v1")
			tr := remote.WithTransport(reg.transport)

			_, err := remote.Image(ref(t, reg, "team/app:v1"), tr)
			assertStatus(t, err, http.StatusUnauthorized)

			wrong := remote.WithAuth(&authn.Basic{Username: "ci", Password: "wrong"})
			_, err = remote.Image(ref(t, reg, "team/app:v1"), tr, wrong)
			assertStatus(t, err, http.StatusUnauthorized)
		})
	}
}

func TestTokenRealmOnRegistryHost(t *testing.T) {
	reg := Start(t, WithTokenAuth("ci", "ci-secret"))
	resp, err := (&http.Client{Transport: reg.transport}).Get("https://" + reg.Host + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	challenge := resp.Header.Get("WWW-Authenticate")
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(challenge, "Bearer ") {
		t.Fatalf("GET /v2/: %s, challenge %q", resp.Status, challenge)
	}
	want := `realm="https://` + reg.Host + `/service/token"`
	if !strings.Contains(challenge, want) {
		t.Fatalf("challenge %q lacks %s", challenge, want)
	}
}

func TestTokenAnonymousPullsPublicOnly(t *testing.T) {
	reg := Start(t, WithTokenAuth("ci", "ci-secret"))
	img := pushRandom(t, reg, "public/base:v1")
	pushRandom(t, reg, "private/base:v1")
	anonymous := remote.WithTransport(reg.transport)

	assertSameImage(t, pull(t, reg, "public/base:v1", anonymous), img)

	_, err := remote.Image(ref(t, reg, "private/base:v1"), anonymous)
	assertStatus(t, err, http.StatusUnauthorized)

	err = remote.Write(ref(t, reg, "public/base:v2"), img, anonymous)
	assertStatus(t, err, http.StatusUnauthorized)
}

func TestTokenCountsIssuedTokens(t *testing.T) {
	if n := Start(t, WithBasicAuth("ci", "ci-secret")).TokensIssued(); n != 0 {
		t.Fatalf("basic auth registry issued %d tokens", n)
	}
	reg := Start(t, WithTokenAuth("ci", "ci-secret"))
	pushRandom(t, reg, "team/app:v1")
	after := reg.TokensIssued()
	if after == 0 {
		t.Fatal("no token issued for a push")
	}
	pull(t, reg, "team/app:v1", reg.RemoteOptions()...)
	if reg.TokensIssued() <= after {
		t.Fatalf("tokens issued: %d after push, %d after pull", after, reg.TokensIssued())
	}
}

func TestTokenOAuthGrants(t *testing.T) {
	reg := Start(t, WithTokenAuth("ci", "ci-secret"))
	client := &http.Client{Transport: reg.transport}
	realm := "https://" + reg.Host + "/service/token"
	post := func(form url.Values) (int, map[string]any) {
		t.Helper()
		resp, err := client.PostForm(realm, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, body
	}
	scope := "repository:team/app:pull,push"

	status, body := post(url.Values{"grant_type": {"password"}, "username": {"ci"}, "password": {"ci-secret"},
		"service": {"testregistry"}, "scope": {scope}, "access_type": {"offline"}})
	if status != http.StatusOK || body["access_token"] == "" || body["refresh_token"] == nil {
		t.Fatalf("password grant: %d %v", status, body)
	}
	status, body = post(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {body["refresh_token"].(string)},
		"service": {"testregistry"}, "scope": {scope}})
	if status != http.StatusOK || body["access_token"] == "" {
		t.Fatalf("refresh_token grant: %d %v", status, body)
	}
	if status, body = post(url.Values{"grant_type": {"password"}, "username": {"ci"}, "password": {"wrong"}}); status != http.StatusUnauthorized {
		t.Fatalf("password grant with a wrong password: %d %v", status, body)
	}
	if status, body = post(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"forged"}}); status != http.StatusUnauthorized {
		t.Fatalf("refresh_token grant with an unknown token: %d %v", status, body)
	}
}

// go-containerregistry exchanges an identity token with a POST refresh_token
// grant, as Docker does after `docker login` to a token registry.
func TestTokenIdentityToken(t *testing.T) {
	reg := Start(t, WithTokenAuth("ci", "ci-secret"))
	img := pushRandom(t, reg, "team/app:v1")
	identity := remote.WithAuth(authn.FromConfig(authn.AuthConfig{IdentityToken: reg.IdentityToken}))
	assertSameImage(t, pull(t, reg, "team/app:v1", remote.WithTransport(reg.transport), identity), img)

	var posts int
	for _, r := range reg.Requests() {
		if r.Method == http.MethodPost && r.Path == "/service/token" {
			posts++
		}
	}
	if posts == 0 {
		t.Fatalf("no POST to the token endpoint in %v", reg.Requests())
	}
}

func TestDockerConfigDir(t *testing.T) {
	reg := Start(t, WithBasicAuth("ci", "ci-secret"))
	b, err := os.ReadFile(filepath.Join(reg.DockerConfigDir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Auths map[string]struct{ Auth string }
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	got, _ := base64.StdEncoding.DecodeString(cfg.Auths[reg.Host].Auth)
	if string(got) != "ci:ci-secret" {
		t.Fatalf("config.json %s: auth for %q is %q", b, reg.Host, got)
	}
}

func TestRequestsRecorded(t *testing.T) {
	reg := Start(t)
	img := pushRandom(t, reg, "team/app:v1")
	digest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range reg.Requests() {
		found = found || (r.Method == http.MethodPut && r.Path == "/v2/team/app/manifests/v1" && r.UserAgent != "")
	}
	if !found {
		t.Fatalf("manifest PUT not among %v (image %s)", reg.Requests(), digest)
	}
}

func TestStoppedAtCleanup(t *testing.T) {
	var host string
	t.Run("inner", func(t *testing.T) { host = Start(t).Host })
	if resp, err := http.Get("http://" + host + "/v2/"); err == nil {
		resp.Body.Close()
		t.Fatalf("registry %s still answers after its test ended", host)
	}
}

func randomImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func pushRandom(t *testing.T, reg *Registry, repoTag string) v1.Image {
	t.Helper()
	img := randomImage(t)
	if err := remote.Write(ref(t, reg, repoTag), img, reg.RemoteOptions()...); err != nil {
		t.Fatalf("pushing %s: %v", repoTag, err)
	}
	return img
}

func pull(t *testing.T, reg *Registry, repoTag string, opts ...remote.Option) v1.Image {
	t.Helper()
	img, err := remote.Image(ref(t, reg, repoTag), opts...)
	if err != nil {
		t.Fatalf("pulling %s: %v", repoTag, err)
	}
	return img
}

func ref(t *testing.T, reg *Registry, repoTag string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(reg.Ref(repoTag))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// assertSameImage compares digests and reads every layer, so blobs are
// served, not just manifests.
func assertSameImage(t *testing.T, got, want v1.Image) {
	t.Helper()
	gd, err := got.Digest()
	if err != nil {
		t.Fatal(err)
	}
	wd, err := want.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if gd != wd {
		t.Fatalf("digest %s, want %s", gd, wd)
	}
	layers, err := got.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.Copy(io.Discard, rc) // the remote layer verifies its digest at EOF
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
}

func assertStatus(t *testing.T, err error, status int) {
	t.Helper()
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != status {
		t.Fatalf("error %v, want HTTP %d", err, status)
	}
}
