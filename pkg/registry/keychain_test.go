package registry

import (
	"encoding/base64"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/kiln-build/kiln/internal/testregistry"
)

func TestDockerConfigPaths(t *testing.T) {
	t.Setenv("HOME", "/home/builder")
	t.Setenv("DOCKER_CONFIG", "/run/secrets/docker")
	t.Setenv("REGISTRY_AUTH_FILE", "/run/containers/auth.json")
	defaults := []string{
		"/kiln/.docker/config.json",
		"/kaniko/.docker/config.json",
		"/home/builder/.docker/config.json",
		"/run/containers/auth.json",
	}
	for _, tc := range []struct {
		flag, env string
		first     []string
	}{
		{"", "/run/secrets/docker", []string{"/run/secrets/docker/config.json"}},
		{"/ci/docker", "/run/secrets/docker", []string{"/ci/docker/config.json"}},
		{"/ci/auth.json", "", []string{"/ci/auth.json"}},
		{"", "", nil},
	} {
		t.Setenv("DOCKER_CONFIG", tc.env)
		want := append(tc.first, defaults...)
		if got := DockerConfigPaths(tc.flag); !slices.Equal(got, want) {
			t.Errorf("DockerConfigPaths(%q) with DOCKER_CONFIG=%q: %q, want %q", tc.flag, tc.env, got, want)
		}
	}
	t.Setenv("REGISTRY_AUTH_FILE", "")
	if got := DockerConfigPaths(""); slices.Contains(got, "") {
		t.Errorf("empty REGISTRY_AUTH_FILE listed: %q", got)
	}
}

func TestKeychainFirstFileWithEntryWins(t *testing.T) {
	other := writeDockerConfig(t, map[string]map[string]string{"other.example": {"auth": basic("x", "y")}})
	first := writeDockerConfig(t, map[string]map[string]string{"registry.example:5000": {"auth": basic("first", "s3cret-first")}})
	second := writeDockerConfig(t, map[string]map[string]string{"registry.example:5000": {"auth": basic("second", "s3cret-second")}})
	missing := filepath.Join(t.TempDir(), "config.json")

	c, hook := newClient(t, WithDockerConfigPaths(missing, other, first, second))
	got := resolve(t, c, "registry.example:5000")
	if got.Username != "first" || got.Password != "s3cret-first" {
		t.Fatalf("resolved %+v, want first's credentials", got)
	}
	if !logged(hook, logrus.InfoLevel, `Registry "registry.example:5000": using credentials from docker config "`+first+`" key "registry.example:5000"`) {
		t.Fatalf("no line naming %q: %v", first, hook.AllEntries())
	}
	for _, e := range hook.AllEntries() {
		if strings.Contains(e.Message, "s3cret") {
			t.Fatalf("secret logged: %q", e.Message)
		}
	}
	if got := resolve(t, c, "unknown.example"); *got != (authn.AuthConfig{}) {
		t.Fatalf("registry without entry resolved to %+v, want anonymous", got)
	}
}

func TestKeychainEntryForms(t *testing.T) {
	for _, tc := range []struct {
		name     string
		key      string
		entry    map[string]string
		registry string
		want     authn.AuthConfig
	}{
		{"host:port with auth", "registry.example:5000", map[string]string{"auth": basic("u", "p:with:colons")},
			"registry.example:5000", authn.AuthConfig{Username: "u", Password: "p:with:colons"}},
		{"host", "registry.example", map[string]string{"auth": basic("u", "p")},
			"registry.example", authn.AuthConfig{Username: "u", Password: "p"}},
		{"URL key", "https://registry.example:5000/v2/", map[string]string{"auth": basic("u", "p")},
			"registry.example:5000", authn.AuthConfig{Username: "u", Password: "p"}},
		{"username and password", "registry.example", map[string]string{"username": "u", "password": "p"},
			"registry.example", authn.AuthConfig{Username: "u", Password: "p"}},
		{"identity token", "registry.example", map[string]string{"identitytoken": "refresh-me"},
			"registry.example", authn.AuthConfig{IdentityToken: "refresh-me"}},
		{"Docker Hub", "https://index.docker.io/v1/", map[string]string{"auth": basic("hub", "p")},
			"docker.io", authn.AuthConfig{Username: "hub", Password: "p"}},
		{"Docker Hub as docker.io", "docker.io", map[string]string{"auth": basic("hub", "p")},
			"index.docker.io", authn.AuthConfig{Username: "hub", Password: "p"}},
		{"other port", "registry.example:5000", map[string]string{"auth": basic("u", "p")},
			"registry.example:5001", authn.AuthConfig{}},
		{"entry without secret", "registry.example", map[string]string{"email": "me@example.com"},
			"registry.example", authn.AuthConfig{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeDockerConfig(t, map[string]map[string]string{tc.key: tc.entry})
			c, _ := newClient(t, WithDockerConfigPaths(path))
			if got := resolve(t, c, tc.registry); *got != tc.want {
				t.Fatalf("resolved %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestBasicAuthFromDockerConfig(t *testing.T) {
	reg := testregistry.Start(t, testregistry.WithBasicAuth("ci", "ci-secret"))
	seed(t, reg, "team/app:v1", randomImage(t, 4096, 1))
	ref := reg.Ref("team/app:v1")

	anonymous, _ := newClient(t, WithInsecureRegistries(reg.Host))
	_, err := anonymous.Pull(t.Context(), ref, v1.Platform{})
	assertErrorContains(t, err, "UNAUTHORIZED")

	// Found through the default search list, from DOCKER_CONFIG.
	t.Setenv("DOCKER_CONFIG", reg.DockerConfigDir)
	log, _ := test.NewNullLogger()
	c, err := New(WithInsecureRegistries(reg.Host), WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Pull(t.Context(), ref, v1.Platform{}); err != nil {
		t.Fatal(err)
	}
}

func TestTokenAuth(t *testing.T) {
	reg := testregistry.Start(t, testregistry.WithTokenAuth("ci", "ci-secret"))
	img := randomImage(t, 4096, 2)
	seed(t, reg, "public/base:v1", img)
	seed(t, reg, "team/app:v1", img)
	ca := WithRegistryCertificate(reg.Host, reg.CAFile)

	anonymous, _ := newClient(t, ca)
	if _, err := anonymous.Pull(t.Context(), reg.Ref("public/base:v1"), v1.Platform{}); err != nil {
		t.Fatalf("anonymous pull of a public repository: %v", err)
	}
	_, err := anonymous.Pull(t.Context(), reg.Ref("team/app:v1"), v1.Platform{})
	assertErrorContains(t, err, "UNAUTHORIZED")

	before := reg.TokensIssued()
	c, _ := newClient(t, ca, WithDockerConfigPaths(filepath.Join(reg.DockerConfigDir, "config.json")))
	if _, err := c.Pull(t.Context(), reg.Ref("team/app:v1"), v1.Platform{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Push(t.Context(), img, []string{reg.Ref("team/app:v2")}); err != nil {
		t.Fatal(err)
	}
	if reg.TokensIssued() <= before {
		t.Fatal("no token issued: the registry was not reached through token auth")
	}

	identity := writeDockerConfig(t, map[string]map[string]string{reg.Host: {"identitytoken": reg.IdentityToken}})
	posts := countRequests(reg, http.MethodPost, "/service/token")
	c, _ = newClient(t, ca, WithDockerConfigPaths(identity))
	if _, err := c.Pull(t.Context(), reg.Ref("team/app:v1"), v1.Platform{}); err != nil {
		t.Fatalf("pull with an identity token: %v", err)
	}
	if countRequests(reg, http.MethodPost, "/service/token") == posts {
		t.Fatal("the identity token was not exchanged (no OAuth POST)")
	}
}

func resolve(t *testing.T, c *Client, registry string) *authn.AuthConfig {
	t.Helper()
	reg, err := name.NewRegistry(registry)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := c.Keychain().Resolve(reg)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := auth.Authorization()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func basic(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}
