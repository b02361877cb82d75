package registry

import (
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/kiln-build/kiln/internal/faultproxy"
	"github.com/kiln-build/kiln/internal/testregistry"
)

func TestPullSurvivesFaults(t *testing.T) {
	reg := testregistry.Start(t)
	img := randomImage(t, 256<<10, 3)
	seed(t, reg, "team/app:v1", img)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	first, _ := layers[0].Digest()
	second, _ := layers[1].Digest()
	third, _ := layers[2].Digest()
	proxy := faultproxy.Start(t, []string{"http://" + reg.Host},
		faultproxy.WithRule(faultproxy.Rule{Method: http.MethodGet, PathContains: "/manifests/", Fault: faultproxy.Reset, Times: 1}),
		faultproxy.WithRule(faultproxy.Rule{PathContains: first.String(), Fault: faultproxy.Truncate, Times: 2}),
		faultproxy.WithRule(faultproxy.Rule{PathContains: second.String(), Fault: faultproxy.Status, Status: http.StatusTooManyRequests, Times: 1}),
		faultproxy.WithRule(faultproxy.Rule{PathContains: second.String(), Fault: faultproxy.Status, Status: http.StatusInternalServerError, Times: 1}),
		faultproxy.WithRule(faultproxy.Rule{PathContains: third.String(), Fault: faultproxy.Slow}))
	for _, cache := range []bool{false, true} {
		opts := []Option{WithInsecureRegistries(proxy.Host)}
		if cache {
			opts = append(opts, WithCacheDir(t.TempDir()))
		}
		c, _ := newClient(t, opts...)
		got, err := c.Pull(t.Context(), proxy.Ref("team/app:v1"), v1.Platform{})
		if err != nil {
			t.Fatal(err)
		}
		readLayers(t, got) // verifies every digest
	}
	if n := len(proxy.Injected()); n < 6 {
		t.Fatalf("only %d faults injected: %q", n, proxy.Injected())
	}
}

func TestPullGivesUpAfterRetries(t *testing.T) {
	reg := testregistry.Start(t)
	img := randomImage(t, 256<<10, 1)
	seed(t, reg, "team/app:v1", img)
	layers, _ := img.Layers()
	digest, _ := layers[0].Digest()
	proxy := faultproxy.Start(t, []string{"http://" + reg.Host},
		faultproxy.WithRule(faultproxy.Rule{PathContains: digest.String(), Fault: faultproxy.Truncate}))
	c, _ := newClient(t, WithInsecureRegistries(proxy.Host), WithPullRetries(1))
	got, err := c.Pull(t.Context(), proxy.Ref("team/app:v1"), v1.Platform{})
	if err != nil {
		t.Fatal(err)
	}
	l, _ := got.LayerByDigest(digest)
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	_, err = io.ReadAll(rc)
	assertErrorContains(t, err, "layer "+digest.String()+": download interrupted after", "on every retry")
	if n := len(proxy.Injected()); n != 2 {
		t.Fatalf("%d downloads, want 2 (one retry): %q", n, proxy.Injected())
	}
}

func TestPushSurvivesFaults(t *testing.T) {
	reg := testregistry.Start(t)
	img := randomImage(t, 64<<10, 3)
	proxy := faultproxy.Start(t, []string{"http://" + reg.Host},
		faultproxy.WithRule(faultproxy.Rule{Method: http.MethodPatch, Fault: faultproxy.Reset, Times: 1}),
		faultproxy.WithRule(faultproxy.Rule{Method: http.MethodPut, PathContains: "/blobs/uploads/", Fault: faultproxy.Status, Status: http.StatusInternalServerError, Times: 1}),
		faultproxy.WithRule(faultproxy.Rule{Method: http.MethodPost, Fault: faultproxy.Status, Status: http.StatusTooManyRequests, Times: 1}),
		faultproxy.WithRule(faultproxy.Rule{Method: http.MethodPut, PathContains: "/manifests/v1", Fault: faultproxy.Status, Status: http.StatusServiceUnavailable, Times: 1}))
	c, _ := newClient(t, WithInsecureRegistries(proxy.Host))
	if _, err := c.Push(t.Context(), img, []string{proxy.Ref("team/app:v1")}); err != nil {
		t.Fatal(err)
	}
	if got := remoteDigest(t, reg, "team/app:v1"); got != mustDigest(t, img) {
		t.Fatalf("team/app:v1 is %s", got)
	}
	if n := len(proxy.Injected()); n != 4 {
		t.Fatalf("%d faults injected, want 4: %q", n, proxy.Injected())
	}
}

// A push that keeps failing tags nothing, at any destination.
func TestFailedPushTagsNothing(t *testing.T) {
	good, bad := testregistry.Start(t), testregistry.Start(t)
	proxy := faultproxy.Start(t, []string{"http://" + bad.Host},
		faultproxy.WithRule(faultproxy.Rule{Method: http.MethodPatch, Fault: faultproxy.Reset}))
	c, _ := newClient(t, WithInsecureRegistries(good.Host, proxy.Host), WithPushRetries(1))
	_, err := c.Push(t.Context(), randomImage(t, 64<<10, 2), []string{good.Ref("team/app:v1"), proxy.Ref("team/app:v1")})
	assertKind(t, err, KindConnection, `pushing "`+proxy.Ref("team/app:v1")+`"`, "on every retry")
	for _, reg := range []*testregistry.Registry{good, bad} {
		ref, _ := name.ParseReference(reg.Ref("team/app:v1"))
		_, err := remote.Head(ref, reg.RemoteOptions()...)
		var terr *transport.Error
		if !errors.As(err, &terr) || terr.StatusCode != http.StatusNotFound {
			t.Fatalf("%s after a failed push: %v, want 404", ref, err)
		}
	}
}
