package registry

import (
	"net/http"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sirupsen/logrus"

	"github.com/kiln-build/kiln/internal/testregistry"
)

func TestRegistryMirrorWithPath(t *testing.T) {
	mirror := testregistry.Start(t)
	img := randomImage(t, 1024, 1)
	seed(t, mirror, "dockerhub-proxy/library/busybox:1.36", img)
	c, _ := newClient(t, WithInsecureRegistries(mirror.Host), WithRegistryMirrors(mirror.Ref("dockerhub-proxy")))

	// Docker Hub is never reached: the mirror has the image.
	got, err := c.Pull(t.Context(), "busybox:1.36", v1.Platform{})
	if err != nil {
		t.Fatal(err)
	}
	if mustDigest(t, got) != mustDigest(t, img) {
		t.Fatal("pulled another image")
	}
	if n := countRequests(mirror, http.MethodGet, "/v2/dockerhub-proxy/library/busybox/manifests/1.36"); n != 1 {
		t.Fatalf("%d manifest GETs on the mirror path: %v", n, mirror.Requests())
	}
}

func TestRegistryMapFallback(t *testing.T) {
	origin, empty, full := testregistry.Start(t), testregistry.Start(t), testregistry.Start(t)
	img := randomImage(t, 1024, 1)
	seed(t, origin, "team/app:v1", img)
	seed(t, full, "cache/team/app:v1", img)
	insecure := WithInsecureRegistries(origin.Host, empty.Host, full.Host)

	c, hook := newClient(t, insecure, WithRegistryMap(origin.Host, empty.Host), WithRegistryMap(origin.Host, full.Ref("cache")))
	if _, err := c.Pull(t.Context(), origin.Ref("team/app:v1"), v1.Platform{}); err != nil {
		t.Fatal(err)
	}
	if countRequests(origin, http.MethodGet, "/manifests/") != 0 || countRequests(full, http.MethodGet, "/v2/cache/team/app/manifests/v1") != 1 {
		t.Fatal("the second mirror did not serve the pull")
	}
	if !logged(hook, logrus.WarnLevel, `Mirror could not serve "`+origin.Ref("team/app:v1")+`"`) {
		t.Fatalf("the failing mirror is not reported: %v", messages(hook))
	}

	// Without a mirror that has it, the origin serves it...
	c, _ = newClient(t, insecure, WithRegistryMap(origin.Host, empty.Host))
	if _, err := c.Pull(t.Context(), origin.Ref("team/app:v1"), v1.Platform{}); err != nil {
		t.Fatal(err)
	}
	// ...unless the fallback is off.
	c, _ = newClient(t, insecure, WithRegistryMap(origin.Host, empty.Host), WithSkipDefaultRegistryFallback(true))
	_, err := c.Pull(t.Context(), origin.Ref("team/app:v1"), v1.Platform{})
	assertErrorContains(t, err, "no mirror could serve it, and --skip-default-registry-fallback forbids pulling from", `pulling "`+empty.Ref("team/app:v1")+`"`, "MANIFEST_UNKNOWN")
}

func TestMirrorOptionErrors(t *testing.T) {
	for _, tc := range []struct {
		opt  Option
		want string
	}{
		{WithRegistryMirrors("http://mirror.example"), `registry mirror "http://mirror.example": give the host without a scheme`},
		{WithRegistryMirrors("mirror.example/Bad Path"), `registry mirror "mirror.example/Bad Path": path "Bad Path"`},
		{WithRegistryMap("bad host", "mirror.example"), `registry map "bad host"="mirror.example"`},
	} {
		_, err := New(WithDockerConfigPaths(), WithCredentialEnv(envMap(nil)), tc.opt)
		assertErrorContains(t, err, tc.want)
	}
	if _, err := New(WithDockerConfigPaths(), WithRegistryMirrors("https://mirror.example/proxy/")); err != nil {
		t.Fatalf("https:// and a trailing slash: %v", err)
	}
}
