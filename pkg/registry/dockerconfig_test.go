package registry

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sirupsen/logrus"
)

func TestPathScopedKeys(t *testing.T) {
	path := writeDockerConfig(t, map[string]map[string]string{
		"harbor.example.com":                  {"auth": basic("host", "p-host")},
		"harbor.example.com/team":             {"auth": basic("team", "p-team")},
		"https://harbor.example.com/team/app": {"auth": basic("app", "p-app")},
		"harbor.example.com/other":            {"email": "placeholder@example.com"},
	})
	c, hook := newClient(t, WithDockerConfigPaths(path))
	for repo, want := range map[string]string{
		"team/app":        "app",
		"team/app/nested": "app",
		"team/tool":       "team",
		"teamx/app":       "host", // "team" is a path component, not a string prefix
		"other/app":       "host", // an entry without a secret is skipped
		"":                "host", // the registry alone
	} {
		var res authn.Resource
		reg, _ := name.NewRegistry("harbor.example.com")
		res = reg
		if repo != "" {
			res = reg.Repo(repo)
		}
		if got := resolveResource(t, c, res); got.Username != want {
			t.Errorf("%q resolved to user %q, want %q", repo, got.Username, want)
		}
	}
	if !logged(hook, logrus.InfoLevel, `using credentials from docker config "`+path+`" key "harbor.example.com/team"`) {
		t.Errorf("the winning key is not logged: %v", messages(hook))
	}
}

func TestCredentialHelpers(t *testing.T) {
	bin := t.TempDir()
	storeFile := filepath.Join(t.TempDir(), "stored")
	writeHelper(t, bin, "fake", `case "$1" in
get)
	url=$(cat)
	case "$url" in
	helped.example.com) echo '{"ServerURL":"helped.example.com","Username":"helper-user","Secret":"helper-secret"}' ;;
	stored.example.com) echo '{"ServerURL":"stored.example.com","Username":"store-user","Secret":"store-secret"}' ;;
	token.example.com) echo '{"ServerURL":"token.example.com","Username":"<token>","Secret":"refresh-me"}' ;;
	broken.example.com) echo "the keyring is locked"; exit 1 ;;
	*) echo "credentials not found in native keychain"; exit 1 ;;
	esac ;;
store) cat > "`+storeFile+`" ;;
esac`)
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	path := writeRawConfig(t, `{
		"auths": {"helped.example.com": {"auth": "`+basic("file-user", "file-secret")+`"}, "file.example.com": {"auth": "`+basic("file-user", "file-secret")+`"}},
		"credHelpers": {"helped.example.com": "fake", "token.example.com": "fake", "broken.example.com": "fake", "missing.example.com": "not-installed"},
		"credsStore": "fake"
	}`)
	c, hook := newClient(t, WithDockerConfigPaths(path))

	for registry, want := range map[string]authn.AuthConfig{
		"helped.example.com":  {Username: "helper-user", Password: "helper-secret"}, // credHelpers beats auths
		"token.example.com":   {IdentityToken: "refresh-me"},
		"file.example.com":    {Username: "file-user", Password: "file-secret"}, // auths beats credsStore
		"stored.example.com":  {Username: "store-user", Password: "store-secret"},
		"missing.example.com": {}, // not installed, then credsStore has nothing: anonymous
	} {
		if got := resolve(t, c, registry); *got != want {
			t.Errorf("%s resolved to %+v, want %+v", registry, got, want)
		}
	}
	if !logged(hook, logrus.InfoLevel, `credential helper "docker-credential-fake" (credHelpers of docker config "`+path+`")`) {
		t.Errorf("helper source not logged: %v", messages(hook))
	}
	if !logged(hook, logrus.WarnLevel, `"docker-credential-not-installed" is not installed`) {
		t.Errorf("missing helper not warned about: %v", messages(hook))
	}
	reg, _ := name.NewRegistry("broken.example.com")
	_, err := c.Keychain().Resolve(reg)
	assertErrorContains(t, err, `credentials for "broken.example.com"`, `"docker-credential-fake"`, "the keyring is locked")
	assertNoSecretLogged(t, hook, "helper-secret", "store-secret", "refresh-me", "file-secret")
}

// A broken entry fails only the registries it is for; a file that is not
// JSON is skipped with its line and column, not fatal.
func TestDockerConfigErrors(t *testing.T) {
	path := writeRawConfig(t, `{"auths": {
		"r.example": {"auth": "%%%"},
		"nocolon.example": {"auth": "bm9jb2xvbg=="},
		"ok.example": {"auth": "`+basic("u", "ok-secret")+`"}}}`)
	c, hook := newClient(t, WithDockerConfigPaths(path))
	if got := resolve(t, c, "ok.example"); got.Username != "u" {
		t.Fatalf("ok.example resolved to %+v", got)
	}
	if got := resolve(t, c, "unrelated.example"); *got != (authn.AuthConfig{}) {
		t.Fatalf("unrelated.example resolved to %+v, want anonymous", got)
	}
	for registry, want := range map[string]string{
		"r.example":       `docker config "` + path + `" key "r.example": "auth" is not base64`,
		"nocolon.example": `docker config "` + path + `" key "nocolon.example": "auth" is not base64 of "USER:PASSWORD"`,
	} {
		_, err := c.Keychain().Resolve(mustRegistry(t, registry))
		assertErrorContains(t, err, `credentials for "`+registry+`"`, want)
	}
	if !logged(hook, logrus.WarnLevel, `key "r.example" is unusable`) {
		t.Errorf("the broken entry is not warned about: %q", messages(hook))
	}
	assertNoSecretLogged(t, hook, "ok-secret")

	invalid := writeRawConfig(t, "{\n  \"auths\": {\n    \"r.example\": {\"auth\": \"x\"},\n  }\n}\n")
	c, hook = newClient(t, WithDockerConfigPaths(invalid, path))
	if got := resolve(t, c, "ok.example"); got.Username != "u" {
		t.Fatalf("the file after an invalid one is not read: %+v", got)
	}
	want := `docker config "` + invalid + `": invalid JSON at line 4, column 3: invalid character '}'`
	if !logged(hook, logrus.WarnLevel, want) {
		t.Errorf("no warning %q: %q", want, messages(hook))
	}
	if text, _ := c.keychain.describe(target{registry: "other.example"}); !strings.Contains(text, want) {
		t.Errorf("searched list %q lacks %q", text, want)
	}

	for _, tc := range []struct{ data, want string }{
		{`{"auths": `, "line 1, column 11: unexpected end of JSON input"},
		{"{\"auths\": [\n]}", "line 1, column 11: json: cannot unmarshal array"},
		{"\n\n   x", "line 3, column 4: invalid character 'x'"},
	} {
		_, err := parseDockerConfig("test", []byte(tc.data), newHelperRunner(logrus.New()))
		assertErrorContains(t, err, "test: invalid JSON at "+tc.want)
	}
}

func TestParseAuthKey(t *testing.T) {
	for key, want := range map[string][2]string{
		"https://index.docker.io/v1/":  {"index.docker.io", ""},
		"docker.io":                    {"index.docker.io", ""},
		"Harbor.Example.com:8443":      {"harbor.example.com:8443", ""},
		"http://r.example:5000/v2/":    {"r.example:5000", ""},
		"r.example/team/":              {"r.example", "team"},
		"https://r.example/team/app":   {"r.example", "team/app"},
		"registry.example.com/v2/team": {"registry.example.com", "v2/team"},
	} {
		reg, path, err := parseAuthKey(key)
		if err != nil || reg != want[0] || path != want[1] {
			t.Errorf("parseAuthKey(%q) = %q, %q, %v; want %q", key, reg, path, err, want)
		}
	}
	if _, _, err := parseAuthKey("bad host/x"); err == nil {
		t.Error(`parseAuthKey("bad host/x") accepted`)
	}
}

func resolveResource(t *testing.T, c *Client, res authn.Resource) *authn.AuthConfig {
	t.Helper()
	auth, err := c.Keychain().Resolve(res)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := auth.Authorization()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// writeHelper installs a docker-credential-NAME shell script in dir.
func writeHelper(t *testing.T, dir, helper, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "docker-credential-"+helper), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func writeRawConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func messages(hook interface{ AllEntries() []*logrus.Entry }) []string {
	var out []string
	for _, e := range hook.AllEntries() {
		out = append(out, e.Level.String()+": "+e.Message)
	}
	return out
}

// assertNoSecretLogged fails if any log entry, or field of one, holds a
// secret.
func assertNoSecretLogged(t *testing.T, hook interface{ AllEntries() []*logrus.Entry }, secrets ...string) {
	t.Helper()
	for _, e := range hook.AllEntries() {
		line, _ := e.String()
		for _, s := range secrets {
			if strings.Contains(line, s) {
				t.Fatalf("secret %q logged: %q", s, line)
			}
		}
	}
}
