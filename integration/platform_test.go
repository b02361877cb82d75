package integration

import (
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/internal/testimage"
)

// archImage is a base for one architecture, with a file naming it.
func archImage(t *testing.T, arch string) v1.Image {
	img := testimage.Image(t, testimage.DefaultEnv, nil, testimage.Layer(t,
		testimage.File{Path: "etc", Dir: true},
		testimage.File{Path: "etc/arch", Data: arch}))
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.Architecture = arch
	img, err := mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestCustomPlatform(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the test's foreign platform is arm64, from an amd64 machine")
	}
	e := newEnv(t)
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.DockerManifestList),
		mutate.IndexAddendum{Add: archImage(t, "amd64"), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: archImage(t, "arm64"), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
	)
	ref, _ := name.ParseReference(e.ref("base/multi:1"), name.Insecure)
	if err := remote.WriteIndex(ref, idx, e.reg.RemoteOptions()...); err != nil {
		t.Fatal(err)
	}
	base := ref.String()

	dir := writeFiles(t, map[string]string{
		"Dockerfile": "FROM " + base + "\nARG TARGETPLATFORM\nLABEL built-for=$TARGETPLATFORM\nCOPY f /f\n",
		"f":          "x",
	})
	dest := e.ref("test/arm64:1")
	e.build(dir, "-d", dest, "--custom-platform", "linux/arm64")
	img := e.pull(dest)
	cf := config(t, img)
	if cf.Architecture != "arm64" || cf.OS != "linux" {
		t.Errorf("config platform %s/%s, want linux/arm64", cf.OS, cf.Architecture)
	}
	if l := cf.Config.Labels["built-for"]; l != "linux/arm64" {
		t.Errorf("TARGETPLATFORM = %q", l)
	}
	if fs := flatten(t, img); fs["/etc/arch"].data != "arm64" {
		t.Errorf("base content is %q's", fs["/etc/arch"].data)
	}

	// A RUN for arm64 needs an emulator: without one, a clear error.
	if _, err := os.Stat("/proc/sys/fs/binfmt_misc/qemu-aarch64"); err == nil {
		t.Skip("this machine has an aarch64 emulator registered")
	}
	runDir := writeFiles(t, map[string]string{"Dockerfile": "FROM " + base + "\nRUN true\n"})
	r := e.tryBuild(runDir, "-d", e.ref("test/arm64:run"), "--custom-platform", "linux/arm64")
	if r.err == nil || !strings.Contains(r.out, "RUN for linux/arm64 needs an emulator on this linux/amd64 machine") {
		t.Errorf("RUN for a foreign platform: %v\n%s", r.err, r.out)
	}
}
