package registry

import (
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sirupsen/logrus"

	"github.com/kiln-build/kiln/internal/testregistry"
)

func TestPushToTwoRegistries(t *testing.T) {
	plain := testregistry.Start(t)
	secure := testregistry.Start(t, testregistry.WithTLS(), testregistry.WithBasicAuth("ci", "ci-secret"))
	img := randomImage(t, 4096, 2)
	want := mustDigest(t, img)
	c, hook := newClient(t,
		WithInsecureRegistries(plain.Host),
		WithRegistryCertificate(secure.Host, secure.CAFile),
		WithDockerConfigPaths(filepath.Join(secure.DockerConfigDir, "config.json")))

	pushed, err := c.Push(t.Context(), img, []string{plain.Ref("app:v1"), secure.Ref("team/app")})
	if err != nil {
		t.Fatal(err)
	}
	wantRefs := []string{plain.Ref("app@" + want.String()), secure.Ref("team/app@" + want.String())}
	if len(pushed) != 2 || pushed[0].String() != wantRefs[0] || pushed[1].String() != wantRefs[1] {
		t.Fatalf("pushed %v, want %v", pushed, wantRefs)
	}
	if got := remoteDigest(t, plain, "app:v1"); got != want {
		t.Fatalf("app:v1 is %s, want %s", got, want)
	}
	if got := remoteDigest(t, secure, "team/app:latest"); got != want {
		t.Fatalf("team/app:latest is %s, want %s", got, want)
	}
	for _, ref := range []string{plain.Ref("app:v1"), secure.Ref("team/app:latest")} {
		if !logged(hook, logrus.InfoLevel, `Pushed "`+ref+`"`) {
			t.Fatalf("no completion line for %s in %v", ref, hook.AllEntries())
		}
	}
}

func TestPushBlobsOnceManifestLast(t *testing.T) {
	reg := testregistry.Start(t)
	img := randomImage(t, 4096, 3)
	c, _ := newClient(t, WithInsecureRegistries(reg.Host))

	if _, err := c.Push(t.Context(), img, []string{reg.Ref("team/app:v1")}); err != nil {
		t.Fatal(err)
	}
	requests := reg.Requests()
	last := requests[len(requests)-1]
	if last.Method != http.MethodPut || last.Path != "/v2/team/app/manifests/v1" {
		t.Fatalf("last request %v, want the manifest PUT; all: %v", last, requests)
	}
	if n := countRequests(reg, http.MethodPut, "/blobs/uploads/"); n != 4 { // 3 layers and the config
		t.Fatalf("%d blob uploads completed, want 4", n)
	}

	// The same image under another tag: only the manifest is sent.
	if _, err := c.Push(t.Context(), img, []string{reg.Ref("team/app:v2")}); err != nil {
		t.Fatal(err)
	}
	if n := countRequests(reg, http.MethodPost, "/blobs/uploads/"); n != 4 {
		t.Fatalf("%d blob uploads started after pushing twice, want 4", n)
	}
	if got := remoteDigest(t, reg, "team/app:v2"); got != mustDigest(t, img) {
		t.Fatalf("team/app:v2 is %s", got)
	}
}

// A pulled image pushed to another repository of the same registry has its
// blobs mounted, not uploaded, with or without the layer cache.
func TestPushMountsPulledBlobs(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []Option
	}{
		{"without cache", nil},
		{"with cache", []Option{WithCacheDir(t.TempDir())}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := testregistry.Start(t)
			seed(t, reg, "library/base:v1", randomImage(t, 4096, 2))
			c, _ := newClient(t, append(tc.opts, WithInsecureRegistries(reg.Host))...)
			base, err := c.Pull(t.Context(), reg.Ref("library/base:v1"), v1.Platform{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Push(t.Context(), base, []string{reg.Ref("team/app:v1")}); err != nil {
				t.Fatal(err)
			}
			if n := countRequests(reg, http.MethodPut, "/v2/team/app/blobs/uploads/"); n != 0 {
				t.Fatalf("%d blobs uploaded, want all mounted; requests: %v", n, reg.Requests())
			}
		})
	}
}

func TestPushDestinationErrors(t *testing.T) {
	plain := testregistry.Start(t)
	untrusted := testregistry.Start(t, testregistry.WithTLS())
	img := randomImage(t, 4096, 1)
	c, _ := newClient(t, WithInsecureRegistries(plain.Host))

	_, err := c.Push(t.Context(), img, []string{plain.Ref("app@" + mustDigest(t, img).String())})
	assertErrorContains(t, err, `pushing to "`+plain.Ref("app@"), "a destination is a tag, not a digest")

	_, err = c.Push(t.Context(), img, []string{"Not A Reference"})
	assertErrorContains(t, err, `pushing to "Not A Reference"`)

	_, err = c.Push(t.Context(), img, []string{plain.Ref("app:v1"), untrusted.Ref("app")})
	assertErrorContains(t, err, `pushing "`+untrusted.Ref("app:latest")+`": `, "certificate")
	if strings.Contains(err.Error(), plain.Host) {
		t.Fatalf("error %q names the destination that worked", err)
	}
}

func TestPushExistingTagLogged(t *testing.T) {
	reg := testregistry.Start(t)
	img := randomImage(t, 4096, 1)
	c, hook := newClient(t, WithInsecureRegistries(reg.Host))
	for range 2 {
		if _, err := c.Push(t.Context(), img, []string{reg.Ref("team/app:v1")}); err != nil {
			t.Fatal(err)
		}
	}
	if !logged(hook, logrus.InfoLevel, "the registry had it already") {
		t.Fatalf("second push of the same tag not reported as such: %v", hook.AllEntries())
	}
}

// With token auth, the push asks for pull access to the repository the
// blobs come from, so that the registry mounts them.
func TestPushMountsAcrossRepositoriesWithTokens(t *testing.T) {
	reg := testregistry.Start(t, testregistry.WithTokenAuth("ci", "ci-secret"))
	seed(t, reg, "team/base:v1", randomImage(t, 4096, 2))
	c, _ := newClient(t, WithRegistryCertificate(reg.Host, reg.CAFile), WithDockerConfigPaths(filepath.Join(reg.DockerConfigDir, "config.json")))
	base, err := c.Pull(t.Context(), reg.Ref("team/base:v1"), v1.Platform{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Push(t.Context(), base, []string{reg.Ref("team/app:v1")}); err != nil {
		t.Fatal(err)
	}
	if n := countRequests(reg, http.MethodPut, "/v2/team/app/blobs/uploads/"); n != 0 {
		t.Fatalf("%d blobs uploaded, want all mounted", n)
	}
	if !slices.Contains(reg.TokenScopes(), "repository:team/base:pull") {
		t.Fatalf("no pull scope for the mount source in %q", reg.TokenScopes())
	}
}
