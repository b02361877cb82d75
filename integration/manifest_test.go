package integration

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/internal/testregistry"
	"github.com/kiln-build/kiln/internal/testutil"
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

// inspect prints a remote manifest or index; rm deletes local lists and
// fails for one that does not exist; --insecure reaches a registry whose
// certificate kiln cannot verify, as docker manifest's does.
func TestManifestInspectRmInsecure(t *testing.T) {
	reg := testregistry.Start(t, testregistry.WithTLS())
	e := &env{t: t, reg: reg, kiln: testutil.Kiln(t)}
	for _, arch := range []string{"amd64", "arm64"} {
		ref, _ := name.ParseReference(e.ref("team/app:" + arch))
		if err := remote.Write(ref, archImage(t, arch), reg.RemoteOptions()...); err != nil {
			t.Fatal(err)
		}
	}
	config := []string{"--docker-config", t.TempDir()}
	manifest := func(args ...string) result {
		t.Helper()
		return e.kilnIn("", append(append([]string{"manifest"}, args...), config...))
	}
	// stdout runs a manifest command that must succeed and returns what it
	// printed on standard output (logs go to standard error).
	stdout := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(e.kiln, append(append([]string{"manifest"}, args...), config...)...)
		cmd.Env = append(os.Environ(), isolatedEnv(t)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("kiln manifest %q: %v\n%s", args, err, stderr.String())
		}
		return out
	}
	target := e.ref("team/app:1")
	sources := []string{e.ref("team/app:amd64"), e.ref("team/app:arm64")}

	// The registry's CA is not trusted: only --insecure gets through.
	wantOutput(t, manifest(append([]string{"create", target}, sources...)...), false, "signed by an unknown authority")
	wantOutput(t, manifest(append([]string{"create", "--insecure", target}, sources...)...), true, "linux/amd64\tsha256:")
	wantOutput(t, manifest("push", target), false, "signed by an unknown authority")
	r := manifest("push", "--insecure", target)
	wantOutput(t, r, true)
	pushed := digestLine.FindString(r.out)

	// inspect: the index as served, then verbose with each image's config.
	wantOutput(t, manifest("inspect", target), false, `inspecting "`+target+`"`, "signed by an unknown authority")
	out := stdout("inspect", "--insecure", target)
	var idx v1.IndexManifest
	if err := json.Unmarshal(out, &idx); err != nil || len(idx.Manifests) != 2 || idx.Manifests[1].Platform.Architecture != "arm64" {
		t.Fatalf("inspect printed %v:\n%s", err, out)
	}
	out = stdout("inspect", "--insecure", "--verbose", target)
	var verbose struct {
		Ref        string
		Descriptor v1.Descriptor
		Manifest   v1.IndexManifest
		Manifests  []struct {
			Ref        string
			Descriptor v1.Descriptor
			Manifest   v1.Manifest
			Config     v1.ConfigFile
		}
	}
	if err := json.Unmarshal(out, &verbose); err != nil {
		t.Fatalf("inspect --verbose printed %v:\n%s", err, out)
	}
	if verbose.Ref != e.ref("team/app@"+pushed) || len(verbose.Manifests) != 2 || verbose.Manifests[1].Config.Architecture != "arm64" ||
		verbose.Manifests[1].Descriptor.Platform.Architecture != "arm64" || len(verbose.Manifests[0].Manifest.Layers) != 1 {
		t.Fatalf("inspect --verbose: %+v", verbose)
	}
	out = stdout("inspect", "--insecure", e.ref("team/app:amd64"))
	var m v1.Manifest
	if err := json.Unmarshal(out, &m); err != nil || m.MediaType != types.DockerManifestSchema2 {
		t.Fatalf("inspect of an image printed %v:\n%s", err, out)
	}
	wantOutput(t, manifest("inspect", "--insecure", e.ref("team/none:1")), false, `inspecting "`+e.ref("team/none:1")+`"`, "404 Not Found")

	// rm: the list was pushed without --purge, so it is still kept.
	other := e.ref("team/app:2")
	wantOutput(t, manifest("create", "--insecure", other, sources[0]), true)
	wantOutput(t, manifest("rm", target, e.ref("team/app:never")), false, `manifest list "`+e.ref("team/app:never")+`": no such manifest list`)
	wantOutput(t, manifest("push", "--insecure", target), false, `manifest list "`+target+`": no such manifest list`)
	wantOutput(t, manifest("rm", other), true, `Deleted the local manifest list "`+other+`"`)
}
