package registry

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
)

func TestSaveCredentialsMerges(t *testing.T) {
	path := writeRawConfig(t, `{
		"auths": {
			"https://harbor.example.com": {"auth": "`+basic("old", "old-secret")+`"},
			"other.example": {"auth": "`+basic("other", "other-secret")+`"}
		},
		"proxies": {"default": {"httpsProxy": "http://proxy.example:3128"}},
		"currentContext": "ci"
	}`)
	robot := authn.AuthConfig{Username: "robot$team+ci", Password: "s3cret$HOME"}
	where, err := SaveCredentials(path, "harbor.example.com", robot)
	if err != nil {
		t.Fatal(err)
	}
	if want := `docker config "` + path + `" key "harbor.example.com"`; where != want {
		t.Errorf("saved in %s, want %s", where, want)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config mode %v (%v), want 0600", st.Mode(), err)
	}
	var doc map[string]json.RawMessage
	raw, _ := os.ReadFile(path)
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"proxies", "currentContext"} {
		if doc[k] == nil {
			t.Errorf("%q lost: %s", k, raw)
		}
	}
	if strings.Contains(string(raw), "https://harbor.example.com") {
		t.Errorf("the old spelling of the key is still there: %s", raw)
	}

	c, _ := newClient(t, WithDockerConfigPaths(path))
	if got := resolve(t, c, "harbor.example.com"); *got != robot {
		t.Errorf("read back %+v, want %+v", got, robot)
	}
	if got := resolve(t, c, "other.example"); got.Username != "other" {
		t.Errorf("other entry read back as %+v", got)
	}
}

func TestSaveCredentialsNewFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new", "dir", "config.json")
	if _, err := SaveCredentials(path, "docker.io", authn.AuthConfig{Username: "hub", Password: "p"}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), `"https://index.docker.io/v1/"`) {
		t.Errorf("Docker Hub saved under another key: %s", raw)
	}
	if st, _ := os.Stat(filepath.Dir(path)); st.Mode().Perm() != 0o700 {
		t.Errorf("config directory mode %v, want 0700", st.Mode())
	}
	if _, err := SaveCredentials(path, "team.example/project", authn.AuthConfig{Username: "u", Password: "p"}); err != nil {
		t.Fatal(err)
	}
	c, _ := newClient(t, WithDockerConfigPaths(path))
	if got := resolveResource(t, c, mustRegistry(t, "team.example").Repo("project/app")); got.Username != "u" {
		t.Errorf("path-scoped login read back as %+v", got)
	}
	if _, err := SaveCredentials(path, "https://r.example", authn.AuthConfig{}); err == nil {
		t.Error("a URL was accepted as a registry")
	}
}

func TestSaveCredentialsInHelper(t *testing.T) {
	bin := t.TempDir()
	stored := filepath.Join(t.TempDir(), "stored.json")
	writeHelper(t, bin, "fake", `[ "$1" = store ] && cat > "`+stored+`"`)
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	path := writeRawConfig(t, `{"credsStore": "fake"}`)

	where, err := SaveCredentials(path, "harbor.example.com", authn.AuthConfig{Username: "robot$ci", Password: "helper-secret"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(where, `credential helper "docker-credential-fake"`) {
		t.Errorf("saved in %s", where)
	}
	var got struct{ ServerURL, Username, Secret string }
	raw, _ := os.ReadFile(stored)
	if err := json.Unmarshal(raw, &got); err != nil || got.ServerURL != "harbor.example.com" || got.Username != "robot$ci" || got.Secret != "helper-secret" {
		t.Fatalf("helper received %s (%v)", raw, err)
	}
	cfg, _ := os.ReadFile(path)
	if strings.Contains(string(cfg), "helper-secret") || !strings.Contains(string(cfg), `"harbor.example.com": {}`) {
		t.Errorf("config after a helper login: %s", cfg)
	}
}

// The vector was computed with Huawei's documented command:
// printf "$AK" | openssl dgst -binary -sha256 -hmac "$SK" | od -An -vtx1.
func TestSWRLogin(t *testing.T) {
	reg, auth, err := SWRLogin("cn-north-4", "AKTESTEXAMPLE0000001", "SkExampleSecretKey0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	want := authn.AuthConfig{Username: "cn-north-4@AKTESTEXAMPLE0000001", Password: "13ef709811c0159770ab1276b0e27fc6771dec4f6096b8c53fc6f9b876c744eb"}
	if reg != "swr.cn-north-4.myhuaweicloud.com" || auth != want {
		t.Fatalf("SWRLogin = %s %+v, want %+v", reg, auth, want)
	}
	for _, bad := range [][3]string{{"cn north 4", "AK", "SK"}, {"", "AK", "SK"}, {"cn-north-4", "", "SK"}, {"cn-north-4", "AK", ""}} {
		if _, _, err := SWRLogin(bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("SWRLogin(%q) accepted", bad)
		}
	}
}

func TestLoginConfigPath(t *testing.T) {
	t.Setenv("HOME", "/home/builder")
	t.Setenv("DOCKER_CONFIG", "")
	for flag, want := range map[string]string{
		"":                "/home/builder/.docker/config.json",
		"/ci/docker":      "/ci/docker/config.json",
		"/ci/docker.json": "/ci/docker.json",
	} {
		if got, err := LoginConfigPath(flag); err != nil || got != want {
			t.Errorf("LoginConfigPath(%q) = %q, %v; want %q", flag, got, err, want)
		}
	}
	t.Setenv("DOCKER_CONFIG", "/run/docker")
	if got, _ := LoginConfigPath(""); got != "/run/docker/config.json" {
		t.Errorf("with DOCKER_CONFIG: %q", got)
	}
}
