package integration

import (
	"regexp"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

var digestLine = regexp.MustCompile(`(?m)^sha256:[0-9a-f]{64}$`)

// The per-architecture-builds-then-merge workflow: each platform's image
// is built on its own (here: one machine), then merged into one list that
// clients resolve per platform.
func TestManifestCommands(t *testing.T) {
	e := newEnv(t)
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.DockerManifestList),
		mutate.IndexAddendum{Add: archImage(t, "amd64"), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: archImage(t, "arm64"), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}})
	baseRef, _ := name.ParseReference(e.ref("base/multi:1"))
	if err := remote.WriteIndex(baseRef, idx, e.reg.RemoteOptions()...); err != nil {
		t.Fatal(err)
	}
	dir := writeFiles(t, map[string]string{"Dockerfile": "FROM " + e.ref("base/multi:1") + "\nCOPY f /f\n", "f": "app"})
	for _, p := range []string{"amd64", "arm64"} {
		e.build(dir, "-d", e.ref("team/app:"+p), "--custom-platform", "linux/"+p)
	}
	conn := []string{"--insecure-registry", e.reg.Host, "--docker-config", t.TempDir()}
	manifest := func(args ...string) result {
		t.Helper()
		return e.kilnIn("", append(append([]string{"manifest"}, args...), conn...))
	}
	target := e.ref("team/app:1")

	r := manifest("create", target, e.ref("team/app:amd64"), e.ref("team/app:arm64"))
	wantOutput(t, r, true, "linux/amd64\tsha256:", "linux/arm64\tsha256:")
	wantOutput(t, manifest("create", target, e.ref("team/app:amd64")), false, "exists: add to it with --amend")
	wantOutput(t, manifest("annotate", target, e.ref("team/app:arm64")), false, "nothing to annotate")
	wantOutput(t, manifest("annotate", target, e.ref("team/app:arm64"), "--variant", "v8"), true)
	r = manifest("push", "--purge", target)
	wantOutput(t, r, true, `Pushed manifest list "`+target+`" (linux/amd64, linux/arm64/v8)`)
	pushed := digestLine.FindString(r.out)

	list := remoteIndexOf(t, e, target)
	if d, _ := list.Digest(); d.String() != pushed {
		t.Fatalf("printed %q, the tag points at %s", pushed, d)
	}
	im, _ := list.IndexManifest()
	if im.MediaType != types.DockerManifestList || len(im.Manifests) != 2 || im.Manifests[1].Platform.Variant != "v8" {
		t.Fatalf("pushed list %+v", im)
	}
	for _, arch := range []string{"amd64", "arm64"} {
		img := imageFor(t, e, target, v1.Platform{OS: "linux", Architecture: arch})
		if fs := flatten(t, img); fs["/etc/arch"].data != arch || fs["/f"].data != "app" {
			t.Errorf("%s resolves to an image with /etc/arch %q", arch, fs["/etc/arch"].data)
		}
	}
	wantOutput(t, manifest("push", target), false, "no such manifest list")

	// --amend adds to a list.
	amended := e.ref("team/app:2")
	wantOutput(t, manifest("create", amended, e.ref("team/app:amd64")), true)
	wantOutput(t, manifest("create", "--amend", amended, e.ref("team/app:arm64")), true)
	wantOutput(t, manifest("push", amended), true)
	if im, _ := remoteIndexOf(t, e, amended).IndexManifest(); len(im.Manifests) != 2 {
		t.Fatalf("amended list has %d manifests", len(im.Manifests))
	}

	// One shot, as an OCI index, from a list and an image: the list's
	// images are listed again, the duplicate only once.
	oneShot := e.ref("release/app:1")
	r = manifest("push-index", "--format", "oci", oneShot, target, e.ref("team/app:amd64"))
	wantOutput(t, r, true)
	im, _ = remoteIndexOf(t, e, oneShot).IndexManifest()
	if im.MediaType != types.OCIImageIndex || len(im.Manifests) != 2 {
		t.Fatalf("one-shot index %+v", im)
	}
	if img := imageFor(t, e, oneShot, v1.Platform{OS: "linux", Architecture: "arm64"}); flatten(t, img)["/etc/arch"].data != "arm64" {
		t.Error("the one-shot index does not resolve arm64")
	}
}

func remoteIndexOf(t *testing.T, e *env, ref string) v1.ImageIndex {
	t.Helper()
	r, _ := name.ParseReference(ref)
	idx, err := remote.Index(r, e.reg.RemoteOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

// imageFor resolves ref for platform as crane and container runtimes do.
func imageFor(t *testing.T, e *env, ref string, p v1.Platform) v1.Image {
	t.Helper()
	r, _ := name.ParseReference(ref)
	img, err := remote.Image(r, append(e.reg.RemoteOptions(), remote.WithPlatform(p))...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}
