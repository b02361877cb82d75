package registry

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/kiln-build/kiln/internal/testregistry"
)

// defaultSearchClient is a client that searches the default places, with
// env as the whole environment (HOME included); opts may add
// WithDockerConfig.
func defaultSearchClient(t *testing.T, env map[string]string, opts ...Option) (*Client, *test.Hook) {
	t.Helper()
	log, hook := test.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	c, err := New(append([]Option{WithLogger(log), WithCredentialEnv(envMap(env)), withRetryDelay(time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c, hook
}

func searchedFor(c *Client, registry, repository string) string {
	text, _ := c.keychain.describe(target{registry: registry, repository: repository})
	return text
}

func mkdir(t *testing.T, dir string, files map[string]string) string {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// When no source has credentials, the error lists every place searched
// and why it gave none.
func TestNoCredentialsSaysWhyEachSourceFailed(t *testing.T) {
	root := t.TempDir()
	home := mkdir(t, filepath.Join(root, "home"), map[string]string{
		".docker/config.json": `{"auths": {"r.example:5000": {"auth": "` + basic("u", "p") + `"}, "https://other.example/v1/": {"auth": "` + basic("u", "p") + `"}}}`,
	})
	empty := mkdir(t, filepath.Join(root, "empty"), nil)
	env := map[string]string{"HOME": home, "DOCKER_CONFIG": empty, "CI_REGISTRY": "gitlab.example.com"}
	c, _ := defaultSearchClient(t, env)

	got := searchedFor(c, "r.example", "team/app")
	for _, want := range []string{
		"no credentials (searched environment variables KILN_REGISTRY_R_EXAMPLE_USER and KILN_REGISTRY_R_EXAMPLE_PASSWORD: not set; ",
		`docker config "` + empty + `/config.json" (from DOCKER_CONFIG "` + empty + `"): no config.json: directory "` + empty + `" is empty; `,
		`docker config "/kaniko/.docker/config.json": `,
		`docker config "` + home + `/.docker/config.json": no key "r.example/team/app", "r.example/team" or "r.example" (it has "https://other.example/v1/", "r.example:5000"); `,
		"environment variable DOCKER_AUTH_CONFIG is not set; ",
		`GitLab CI variables: CI_REGISTRY "gitlab.example.com" is another registry, CI_DEPENDENCY_PROXY_SERVER not set)`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("searched list lacks %q:\n%s", want, got)
		}
	}

	// A directory that holds something else, and one that does not exist.
	other := mkdir(t, filepath.Join(root, "other"), map[string]string{"auth.json": "{}", "..data/x": ""})
	c, _ = defaultSearchClient(t, map[string]string{"HOME": home, "DOCKER_CONFIG": other})
	want := `docker config "` + other + `/config.json" (from DOCKER_CONFIG "` + other + `"): no config.json in directory "` + other + `" (it holds "auth.json")`
	if got := searchedFor(c, "r.example", ""); !strings.Contains(got, want) {
		t.Errorf("searched list lacks %q:\n%s", want, got)
	}
	missing := filepath.Join(root, "missing")
	c, hook := defaultSearchClient(t, map[string]string{"HOME": home}, WithDockerConfig(missing))
	want = `docker config "` + missing + `/config.json" (from --docker-config "` + missing + `"): no such directory "` + missing + `"`
	if got := searchedFor(c, "r.example", ""); !strings.Contains(got, want) {
		t.Errorf("searched list lacks %q:\n%s", want, got)
	}
	if !logged(hook, logrus.WarnLevel, want+"; searching the other places") {
		t.Errorf("a missing --docker-config is not warned about: %q", messages(hook))
	}
}

// An empty or unset DOCKER_CONFIG or --docker-config is said, quoted; a
// stray space in a value shows.
func TestEmptyDockerConfigSaid(t *testing.T) {
	home := t.TempDir()
	for _, tc := range []struct {
		env  map[string]string
		opts []Option
		want string
	}{
		{map[string]string{"HOME": home}, nil, "; DOCKER_CONFIG is not set; "},
		{map[string]string{"HOME": home, "DOCKER_CONFIG": ""}, nil, `; DOCKER_CONFIG is empty (""); `},
		{map[string]string{"HOME": home}, []Option{WithDockerConfig("")}, `; --docker-config is empty (""); DOCKER_CONFIG is not set; `},
		{map[string]string{"HOME": home, "DOCKER_CONFIG": " /run/docker"}, nil, `docker config " /run/docker/config.json" (from DOCKER_CONFIG " /run/docker"): no such directory " /run/docker"`},
	} {
		c, _ := defaultSearchClient(t, tc.env, tc.opts...)
		if got := searchedFor(c, "r.example", ""); !strings.Contains(got, tc.want) {
			t.Errorf("env %q: searched list lacks %q:\n%s", tc.env, tc.want, got)
		}
	}
}

// A Kubernetes Secret of type kubernetes.io/dockerconfigjson mounted
// without items leaves .dockerconfigjson, not config.json: it is read, and
// the log says so.
func TestKubernetesSecretWithoutItems(t *testing.T) {
	dir := mkdir(t, filepath.Join(t.TempDir(), "docker"), map[string]string{
		".dockerconfigjson":                 `{"auths": {"harbor.example.com": {"auth": "` + basic("robot$ci", "k8s-secret") + `"}}}`,
		"..2025_01_01_00_00_00.000000001/x": "",
	})
	for _, opts := range [][]Option{{WithDockerConfig(dir)}, {WithDockerConfigPaths(filepath.Join(dir, "config.json"))}} {
		c, hook := defaultSearchClient(t, map[string]string{"HOME": t.TempDir()}, opts...)
		if got := resolve(t, c, "harbor.example.com"); got.Username != "robot$ci" || got.Password != "k8s-secret" {
			t.Fatalf("resolved %+v", got)
		}
		secret := filepath.Join(dir, ".dockerconfigjson")
		if !logged(hook, logrus.InfoLevel, `Docker config "`+filepath.Join(dir, "config.json")+`" is missing; reading "`+secret+`" beside it (a Kubernetes Secret`) {
			t.Errorf("reading the Secret's file is not logged: %q", messages(hook))
		}
		if !logged(hook, logrus.InfoLevel, `using credentials from docker config "`+secret+`"`) {
			t.Errorf("the source is not named: %q", messages(hook))
		}
		assertNoSecretLogged(t, hook, "k8s-secret")
	}
}

// Against a real registry: a push without credentials fails with the
// registry's 401 and the list of places searched; an invalid config.json
// for another registry does not stop a pull that needs none.
func TestUnauthorizedListsPlacesSearched(t *testing.T) {
	reg := testregistry.Start(t, testregistry.WithBasicAuth("ci", "ci-secret"))
	open := testregistry.Start(t)
	seed(t, open, "team/base:v1", randomImage(t, 1024, 1))
	root := t.TempDir()
	broken := mkdir(t, filepath.Join(root, "broken"), map[string]string{"config.json": "{\"auths\": {\n\"" + reg.Host + "\": {\"auth\": \"x\"}\n"})
	c, hook := defaultSearchClient(t, map[string]string{"HOME": root, "DOCKER_CONFIG": broken}, WithInsecureRegistries(reg.Host))
	if !logged(hook, logrus.WarnLevel, `docker config "`+broken+`/config.json" (from DOCKER_CONFIG "`+broken+`"): invalid JSON at line 3, column 1`) {
		t.Errorf("no warning naming the line: %q", messages(hook))
	}
	img, err := c.Pull(t.Context(), open.Ref("team/base:v1"), v1.Platform{})
	if err != nil {
		t.Fatalf("a registry that needs no credentials: %v", err)
	}
	_, err = c.Push(t.Context(), img, []string{reg.Ref("team/app:v1")})
	assertKind(t, err, KindUnauthorized, `answered 401 Unauthorized for repository "team/app"`,
		`no credentials (searched environment variables `,
		`docker config "`+broken+`/config.json" (from DOCKER_CONFIG "`+broken+`"): invalid JSON at line 3, column 1: unexpected end of JSON input`,
		`docker config "`+root+`/.docker/config.json": no such directory`,
		"`kiln login "+reg.Host+"`")
	if got := resolve(t, c, reg.Host); *got != (authn.AuthConfig{}) {
		t.Fatalf("resolved %+v from an invalid file", got)
	}
}
