package registry

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
)

// Credentials are read once: the helpers run at PreloadCredentials, their
// answers are kept, a program planted in PATH later is never run, and the
// helpers never see the credential variables kiln was given.
func TestPreloadedCredentials(t *testing.T) {
	bin := t.TempDir()
	seen := filepath.Join(t.TempDir(), "helper-env")
	writeHelper(t, bin, "fake", `env > "`+seen+`"; read server; echo '{"Username":"helper-user","Secret":"helper-secret"}'`)
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("KILN_REGISTRY_OTHER_EXAMPLE_COM_USER", "env-user")
	t.Setenv("KILN_REGISTRY_OTHER_EXAMPLE_COM_PASSWORD", "env-secret")
	t.Setenv("KANIKO_FORK_EXAMPLE_COM_USER", "fork-user")
	t.Setenv("KANIKO_FORK_EXAMPLE_COM_PASSWORD", "fork-secret")
	t.Setenv("CI_JOB_TOKEN", "job-token")
	path := writeRawConfig(t, `{"credHelpers": {"helped.example.com": "fake"}}`)
	// The process environment, as kiln reads it (nil: a snapshot at New).
	c, _ := newClient(t, WithDockerConfigPaths(path), WithCredentialEnv(nil))

	c.PreloadCredentials([]string{"helped.example.com/team/app:1", "not a reference"})
	env, err := os.ReadFile(seen)
	if err != nil {
		t.Fatalf("the helper did not run at preload: %v", err)
	}
	for _, secret := range []string{"env-secret", "fork-secret", "job-token"} {
		if strings.Contains(string(env), secret) {
			t.Errorf("the helper saw %s", secret)
		}
	}

	// The environment is scrubbed; the client kept what it read.
	ScrubCredentialEnv()
	for _, v := range []string{"KILN_REGISTRY_OTHER_EXAMPLE_COM_PASSWORD", "KANIKO_FORK_EXAMPLE_COM_PASSWORD", "CI_JOB_TOKEN"} {
		if _, ok := os.LookupEnv(v); ok {
			t.Errorf("%s is still in kiln's environment", v)
		}
	}
	if _, ok := os.LookupEnv("PATH"); !ok {
		t.Error("PATH was scrubbed")
	}
	// A program planted in PATH after the preload is never run.
	writeHelper(t, bin, "fake", `echo '{"Username":"planted","Secret":"planted"}'`)
	for registry, want := range map[string]authn.AuthConfig{
		"helped.example.com": {Username: "helper-user", Password: "helper-secret"},
		"other.example.com":  {Username: "env-user", Password: "env-secret"},
		"fork.example.com":   {Username: "fork-user", Password: "fork-secret"},
	} {
		if got := resolve(t, c, registry); *got != want {
			t.Errorf("%s resolved to %+v, want %+v", registry, got, want)
		}
	}
}
