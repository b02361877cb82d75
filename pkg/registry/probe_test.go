package registry

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/kiln-build/kiln/internal/testregistry"
)

func TestCheckPush(t *testing.T) {
	reg := testregistry.Start(t, testregistry.WithTokenAuth("ci", "ci-secret"), testregistry.WithProjects("team"))
	ca := WithRegistryCertificate(reg.Host, reg.CAFile)
	good, _ := newClient(t, ca, WithDockerConfigPaths(filepath.Join(reg.DockerConfigDir, "config.json")))

	if err := good.CheckPush(t.Context(), []string{reg.Ref("team/app:v1"), reg.Ref("team/app:v2"), reg.Ref("team/tool")}); err != nil {
		t.Fatal(err)
	}
	if n := countRequests(reg, http.MethodPost, "/blobs/uploads/"); n != 2 {
		t.Fatalf("%d uploads started, want one per repository (2)", n)
	}
	cancelled := map[string]bool{} // a DELETE may be repeated with a fresh token
	for _, r := range reg.Requests() {
		if r.Method == http.MethodDelete {
			cancelled[r.Path] = true
		}
	}
	if len(cancelled) != 2 {
		t.Fatalf("%d uploads cancelled, want 2", len(cancelled))
	}
	if n := countRequests(reg, http.MethodPut, ""); n != 0 {
		t.Fatalf("the check wrote %d things", n)
	}

	wrong := writeDockerConfig(t, map[string]map[string]string{reg.Host: {"auth": basic("ci", "wrong")}})
	bad, _ := newClient(t, ca, WithDockerConfigPaths(wrong))
	err := bad.CheckPush(t.Context(), []string{reg.Ref("team/app:v1")})
	assertKind(t, err, KindUnauthorized, `checking push access to "`+reg.Ref("team/app:v1")+`"`, `key "`+reg.Host+`"`)

	// Every failing destination is reported.
	err = good.CheckPush(t.Context(), []string{reg.Ref("missing/app:v1"), reg.Ref("team/app:v1"), reg.Ref("absent/app")})
	assertErrorContains(t, err, `project or organization "missing"`, `project or organization "absent"`)
}

func TestCheckCredentials(t *testing.T) {
	for _, tc := range []struct {
		name      string
		opts      []testregistry.Option
		who, text string
	}{
		{"basic", []testregistry.Option{testregistry.WithTLS(), testregistry.WithBasicAuth("robot$team+ci", "ci-secret")}, "", "UNAUTHORIZED: authentication required"},
		{"token", []testregistry.Option{testregistry.WithTokenAuth("robot$team+ci", "ci-secret")}, "token", "UNAUTHORIZED: invalid username or password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := testregistry.Start(t, tc.opts...)
			tc.who = `registry "` + reg.Host + `"`
			if tc.name == "token" {
				tc.who = `the token service "https://` + reg.Host + `/service/token" of ` + tc.who
			}
			c, _ := newClient(t, WithRegistryCertificate(reg.Host, reg.CAFile))
			if err := c.CheckCredentials(t.Context(), reg.Host, authn.AuthConfig{Username: "robot$team+ci", Password: "ci-secret"}); err != nil {
				t.Fatal(err)
			}
			err := c.CheckCredentials(t.Context(), reg.Host, authn.AuthConfig{Username: "robot$team+ci", Password: "wrong"})
			assertKind(t, err, KindUnauthorized, `logging in to "`+reg.Host+`": `+tc.who+` answered 401 Unauthorized to user "robot$team+ci": "`+tc.text+`"`,
				"Check the user name and the password as given", "single-quote it for the shell")
			if strings.Contains(err.Error(), "kiln login") || strings.Contains(err.Error(), "wrong") {
				t.Fatalf("the advice loops back to kiln login, or the password shows: %v", err)
			}
		})
	}
}
