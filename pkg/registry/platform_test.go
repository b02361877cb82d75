package registry

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kiln-build/kiln/internal/testregistry"
)

func TestNormalizePlatform(t *testing.T) {
	for in, want := range map[string]string{
		"linux/amd64":    "linux/amd64",
		"linux/amd64/v1": "linux/amd64",
		"linux/amd64/v3": "linux/amd64/v3",
		"linux/x86_64":   "linux/amd64",
		"linux/arm64/v8": "linux/arm64",
		"linux/aarch64":  "linux/arm64",
		"linux/arm":      "linux/arm/v7",
		"linux/arm/7":    "linux/arm/v7",
		"linux/armhf":    "linux/arm/v7",
		"linux/armel":    "linux/arm/v6",
		"Linux/ARM64":    "linux/arm64",
		"linux/i386":     "linux/386",
		"linux/riscv64":  "linux/riscv64",
		"windows/amd64":  "windows/amd64",
	} {
		p, err := v1.ParsePlatform(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := NormalizePlatform(*p).String(); got != want {
			t.Errorf("NormalizePlatform(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestSelectManifest(t *testing.T) {
	index := func(platforms ...string) *v1.IndexManifest {
		im := &v1.IndexManifest{}
		for i, s := range platforms {
			p, _ := v1.ParsePlatform(s)
			im.Manifests = append(im.Manifests, v1.Descriptor{Size: int64(i), Platform: p})
		}
		return im
	}
	for _, tc := range []struct {
		list []string
		want string
		pick int // index of the entry; -1 for none
	}{
		{[]string{"linux/amd64", "linux/arm64"}, "linux/arm64/v8", 1},
		{[]string{"linux/amd64", "linux/arm64/v8"}, "linux/arm64", 1},
		{[]string{"linux/arm/v6", "linux/arm/v7"}, "linux/arm", 1},
		{[]string{"linux/arm/v5", "linux/arm/v6"}, "linux/arm/v7", 1},    // the closest lower variant
		{[]string{"linux/arm/v7"}, "linux/arm/v6", -1},                   // a v6 CPU cannot run v7 code
		{[]string{"linux/amd64", "linux/amd64/v3"}, "linux/amd64/v2", 0}, // v3 needs a newer CPU
		{[]string{"linux/amd64/v2", "linux/amd64/v3"}, "linux/amd64/v3", 1},
		{[]string{"unknown/unknown", "linux/amd64"}, "linux/amd64", 1},
		{[]string{"linux/amd64", "linux/arm64"}, "linux/s390x", -1},
	} {
		want, _ := v1.ParsePlatform(tc.want)
		got, err := selectManifest(index(tc.list...), *want)
		switch {
		case tc.pick < 0 && err == nil:
			t.Errorf("%v for %s: picked %v", tc.list, tc.want, got.Platform)
		case tc.pick >= 0 && (err != nil || got.Size != int64(tc.pick)):
			t.Errorf("%v for %s: picked %v (%v), want %s", tc.list, tc.want, got.Platform, err, tc.list[tc.pick])
		}
	}
	_, err := selectManifest(index("linux/amd64", "linux/arm/v7", "unknown/unknown"), v1.Platform{OS: "linux", Architecture: "s390x"})
	assertErrorContains(t, err, "no image for linux/s390x in the index (it has linux/amd64, linux/arm/v7)")
}

// Indexes written by other tools spell variants differently; a pull for
// linux/arm64/v8 finds the "linux/arm64" entry and arm finds arm/v7.
func TestPullNormalizesVariants(t *testing.T) {
	reg := testregistry.Start(t)
	var idx v1.ImageIndex = empty.Index
	images := map[string]v1.Image{}
	for _, s := range []string{"linux/amd64", "linux/arm64", "linux/arm/v7"} {
		p, _ := v1.ParsePlatform(s)
		img := withPlatform(t, randomImage(t, 1024, 1), *p)
		images[s] = img
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: p}})
	}
	ref, _ := name.ParseReference(reg.Ref("multi/app:v1"))
	if err := remote.WriteIndex(ref, idx, reg.RemoteOptions()...); err != nil {
		t.Fatal(err)
	}
	c, _ := newClient(t, WithInsecureRegistries(reg.Host))
	for want, entry := range map[string]string{"linux/arm64/v8": "linux/arm64", "linux/aarch64": "linux/arm64", "linux/arm": "linux/arm/v7", "linux/amd64/v1": "linux/amd64"} {
		p, _ := v1.ParsePlatform(want)
		got, err := c.Pull(t.Context(), reg.Ref("multi/app:v1"), *p)
		if err != nil {
			t.Fatalf("pull for %s: %v", want, err)
		}
		if mustDigest(t, got) != mustDigest(t, images[entry]) {
			t.Errorf("pull for %s did not pick %s", want, entry)
		}
	}
}
