package registry

import (
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/sirupsen/logrus"
)

func TestCredentialEnvVars(t *testing.T) {
	for registry, want := range map[string]string{
		"harbor.example.com":               "KILN_REGISTRY_HARBOR_EXAMPLE_COM",
		"harbor.example.com:8443":          "KILN_REGISTRY_HARBOR_EXAMPLE_COM_8443",
		"127.0.0.1:5000":                   "KILN_REGISTRY_127_0_0_1_5000",
		"my-registry.local":                "KILN_REGISTRY_MY_REGISTRY_LOCAL",
		"docker.io":                        "KILN_REGISTRY_DOCKER_IO",
		"index.docker.io":                  "KILN_REGISTRY_DOCKER_IO",
		"Swr.CN-North-4.myhuaweicloud.com": "KILN_REGISTRY_SWR_CN_NORTH_4_MYHUAWEICLOUD_COM",
	} {
		user, password := CredentialEnvVars(registry)
		if user != want+"_USER" || password != want+"_PASSWORD" {
			t.Errorf("CredentialEnvVars(%q) = %s, %s; want the prefix %s", registry, user, password, want)
		}
	}
}

// Sources are asked in order: KILN_REGISTRY_* variables, docker config
// files, DOCKER_AUTH_CONFIG, GitLab's variables.
func TestCredentialSourceOrder(t *testing.T) {
	file := writeDockerConfig(t, map[string]map[string]string{
		"env.example":    {"auth": basic("file", "file-secret")},
		"file.example":   {"auth": basic("file", "file-secret")},
		"gitlab.example": {"auth": basic("file", "file-secret")},
	})
	env := envMap(map[string]string{
		"KILN_REGISTRY_ENV_EXAMPLE_USER":     "robot$team+ci",
		"KILN_REGISTRY_ENV_EXAMPLE_PASSWORD": "env-secret",
		"DOCKER_AUTH_CONFIG": `{"auths": {"file.example": {"auth": "` + basic("dac", "dac-secret") + `"},
			"dac.example": {"auth": "` + basic("dac", "dac-secret") + `"}}}`,
		"CI_REGISTRY":                  "gitlab.example",
		"CI_REGISTRY_USER":             "gitlab-ci-token",
		"CI_REGISTRY_PASSWORD":         "job-secret",
		"CI_DEPENDENCY_PROXY_SERVER":   "proxy.example:443",
		"CI_DEPENDENCY_PROXY_USER":     "gitlab-ci-token",
		"CI_DEPENDENCY_PROXY_PASSWORD": "proxy-secret",
	})
	c, hook := newClient(t, WithDockerConfigPaths(file), WithCredentialEnv(env))
	for registry, want := range map[string]authn.AuthConfig{
		"env.example":       {Username: "robot$team+ci", Password: "env-secret"},
		"file.example":      {Username: "file", Password: "file-secret"},
		"dac.example":       {Username: "dac", Password: "dac-secret"},
		"gitlab.example":    {Username: "file", Password: "file-secret"},
		"proxy.example:443": {Username: "gitlab-ci-token", Password: "proxy-secret"},
		"other.example":     {},
	} {
		if got := resolve(t, c, registry); *got != want {
			t.Errorf("%s resolved to %+v, want %+v", registry, got, want)
		}
	}
	for _, line := range []string{
		`Registry "env.example": using credentials from environment variables KILN_REGISTRY_ENV_EXAMPLE_USER and KILN_REGISTRY_ENV_EXAMPLE_PASSWORD`,
		`Registry "dac.example": using credentials from environment variable DOCKER_AUTH_CONFIG key "dac.example"`,
		`Registry "proxy.example:443": using credentials from GitLab CI variables CI_DEPENDENCY_PROXY_USER and CI_DEPENDENCY_PROXY_PASSWORD`,
		`Registry "other.example": no credentials found, accessing it anonymously`,
	} {
		if !logged(hook, logrus.InfoLevel, line) {
			t.Errorf("not logged: %s\nlog: %q", line, messages(hook))
		}
	}
	assertNoSecretLogged(t, hook, "env-secret", "file-secret", "dac-secret", "job-secret", "proxy-secret")

	// Without a file entry, GitLab's job token is used for its registry.
	c, _ = newClient(t, WithCredentialEnv(env))
	if got := resolve(t, c, "gitlab.example"); got.Password != "job-secret" {
		t.Errorf("gitlab.example resolved to %+v, want the job token", got)
	}
}

func TestCredentialEnvHalfSet(t *testing.T) {
	c, _ := newClient(t, WithCredentialEnv(envMap(map[string]string{"KILN_REGISTRY_R_EXAMPLE_USER": "ci"})))
	reg := mustRegistry(t, "r.example")
	_, err := c.Keychain().Resolve(reg)
	assertErrorContains(t, err, `credentials for "r.example"`, "KILN_REGISTRY_R_EXAMPLE_USER is set but KILN_REGISTRY_R_EXAMPLE_PASSWORD is not")
}

func TestDockerAuthConfigMalformed(t *testing.T) {
	c, hook := newClient(t, WithCredentialEnv(envMap(map[string]string{"DOCKER_AUTH_CONFIG": `{"auths": [`})))
	want := "environment variable DOCKER_AUTH_CONFIG: invalid JSON at line 1, column 12"
	if !logged(hook, logrus.WarnLevel, want) {
		t.Errorf("no warning %q: %q", want, messages(hook))
	}
	if got := resolve(t, c, "r.example"); *got != (authn.AuthConfig{}) {
		t.Fatalf("resolved %+v, want anonymous", got)
	}
	if text, _ := c.keychain.describe(target{registry: "r.example"}); !strings.Contains(text, want) {
		t.Errorf("searched list %q lacks %q", text, want)
	}
}
