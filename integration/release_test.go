package integration

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/kiln-build/kiln/internal/testregistry"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/pkg/dockerfile"
)

// releasePlatforms are the platforms `make release` builds for.
var releasePlatforms = []string{"amd64", "arm64"}

// elfMachines are the ELF machines of releasePlatforms.
var elfMachines = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// repoCmd runs a command in the repository and returns its trimmed stdout.
func repoCmd(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = testutil.RepoRoot()
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// wantStamp checks what a kiln binary says about itself: the version, the
// commit (from git, not from hack/version.sh) and the commit's time.
func wantStamp(t *testing.T, binary, version string) {
	t.Helper()
	commit := repoCmd(t, nil, "git", "rev-parse", "HEAD")
	if exec.Command("git", "-C", testutil.RepoRoot(), "diff", "--quiet", "HEAD").Run() != nil {
		commit += "-dirty"
	}
	commitTime, err := time.Parse(time.RFC3339, repoCmd(t, nil, "git", "log", "-1", "--format=%cI"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"kiln " + version,
		"commit: " + commit,
		"build date: " + commitTime.UTC().Format(time.RFC3339),
		"go: go1.",
		"platform: linux/" + runtime.GOARCH,
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, err := exec.Command(binary, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", binary, args[0], err, out)
		}
		got := strings.Join(strings.Fields(string(out)), " ")
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("%s %s: no %q in\n%s", binary, args[0], w, out)
			}
		}
	}
}

// TestBuildStampsVersion checks that `make build` stamps version, commit
// and build date: the binary under test when `make test` gives it
// (KILN_BINARY is bin/kiln), else one linked with the same ldflags.
func TestBuildStampsVersion(t *testing.T) {
	binary := os.Getenv("KILN_BINARY")
	if binary == "" {
		binary = filepath.Join(t.TempDir(), "kiln")
		repoCmd(t, []string{"CGO_ENABLED=0"}, "go", "build", "-trimpath",
			"-ldflags", repoCmd(t, nil, "hack/version.sh", "ldflags"), "-o", binary, "./cmd/kiln")
	}
	wantStamp(t, binary, repoCmd(t, nil, "hack/version.sh", "version"))
}

// TestImageDockerfileHasNoRun: the release builds the images of every
// platform on this machine, which can only work without RUN (no emulator).
func TestImageDockerfileHasNoRun(t *testing.T) {
	path := filepath.Join(testutil.RepoRoot(), "deploy", "image", "Dockerfile")
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	df, err := dockerfile.Parse(bytes.NewReader(src), path)
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"executor", "debug"} {
		for _, arch := range releasePlatforms {
			plan, err := df.Plan(dockerfile.PlanOptions{Target: target, TargetPlatform: v1.Platform{OS: "linux", Architecture: arch}})
			if err != nil {
				t.Fatalf("%s for linux/%s: %v", target, arch, err)
			}
			for _, s := range plan.Stages {
				for _, c := range s.Commands {
					if _, ok := c.(*instructions.RunCommand); ok {
						t.Errorf("%s: stage %q has a RUN: the release builds linux/%s images on any machine", path, s.Name, arch)
					}
				}
			}
		}
	}
}

// releaseBusybox returns a static busybox for arch from hack/busybox.sh, or
// skips the test when this machine cannot get one.
func releaseBusybox(t *testing.T, arch string) string {
	t.Helper()
	cmd := exec.Command("hack/busybox.sh", arch, t.TempDir())
	cmd.Dir = testutil.RepoRoot()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit) && exit.ExitCode() == 2:
		t.Skipf("no static busybox for linux/%s on this machine (CI, as root on Debian, gets it): %s", arch, strings.TrimSpace(stderr.String()))
	case err != nil:
		t.Fatalf("hack/busybox.sh %s: %v\n%s", arch, err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// release runs hack/release.sh (make release) into dist with the given
// variables and returns dist.
func release(t *testing.T, kiln, dist string, vars ...string) string {
	t.Helper()
	cmd := exec.Command("hack/release.sh")
	cmd.Dir = testutil.RepoRoot()
	cmd.Env = append(os.Environ(), append([]string{"DIST=" + dist, "KILN=" + kiln}, vars...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("hack/release.sh: %v\n%s", err, out)
	}
	return dist
}

// TestRelease runs `make release` for linux/amd64 and linux/arm64 as far as
// one machine allows (the images have no RUN, so nothing needs emulating):
// binaries, images, manifest lists, the OCI layout, the push to a registry,
// mirroring the lists to another registry, and a second run that must give
// the same digests.
func TestRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles kiln and builds its images: not in -short mode")
	}
	testutil.RequireFile(t, "/etc/ssl/certs/ca-certificates.crt", "ca-certificates")
	busybox := map[string]string{}
	for _, arch := range releasePlatforms {
		busybox[arch] = releaseBusybox(t, arch)
	}
	kiln := testutil.Kiln(t)
	reg := testregistry.Start(t, testregistry.WithTLS(), testregistry.WithBasicAuth("ci", "ci-secret"))
	repo := reg.Ref("team/kiln")
	const version = "v9.9.9"
	vars := []string{"VERSION=" + version, "BUSYBOX_AMD64=" + busybox["amd64"], "BUSYBOX_ARM64=" + busybox["arm64"]}
	dist := release(t, kiln, filepath.Join(t.TempDir(), "dist"), append(vars, "PUSH=1", "REPO="+repo,
		"KILN_FLAGS=--docker-config "+reg.DockerConfigDir+" --registry-certificate "+reg.Host+"="+reg.CAFile)...)

	digests := readImagesTxt(t, filepath.Join(dist, "images.txt"))
	wantTags := []string{version, version + "-debug"}
	for _, arch := range releasePlatforms {
		wantTags = append(wantTags, version+"-"+arch, version+"-debug-"+arch)
	}
	slices.Sort(wantTags)
	if got := sortedKeys(digests); !slices.Equal(got, wantTags) {
		t.Fatalf("images.txt lists %v, want %v", got, wantTags)
	}

	t.Run("binaries", func(t *testing.T) {
		sums := readFileString(t, filepath.Join(dist, "SHA256SUMS"))
		for _, arch := range releasePlatforms {
			bin := filepath.Join(dist, "kiln-linux-"+arch)
			if !strings.Contains(sums, sha256File(t, bin)+"  kiln-linux-"+arch+"\n") {
				t.Errorf("SHA256SUMS has no line for %s as it is:\n%s", bin, sums)
			}
			data, err := os.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			wantStaticELF(t, bin, data, elfMachines[arch])
		}
		wantStamp(t, filepath.Join(dist, "kiln-linux-"+runtime.GOARCH), version)
	})

	p, err := layout.FromPath(filepath.Join(dist, "oci"))
	if err != nil {
		t.Fatal(err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	tm, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	inLayout := map[string]v1.Descriptor{}
	for _, d := range tm.Manifests {
		inLayout[d.Annotations["org.opencontainers.image.ref.name"]] = d
	}
	for _, tag := range wantTags {
		if inLayout[tag].Digest != digests[tag] {
			t.Errorf("layout: %q is %s, images.txt says %s", tag, inLayout[tag].Digest, digests[tag])
		}
	}

	for _, flavour := range []string{"", "-debug"} {
		list := version + flavour
		t.Run("list "+list, func(t *testing.T) {
			idx, err := top.ImageIndex(digests[list])
			if err != nil {
				t.Fatal(err)
			}
			im, err := idx.IndexManifest()
			if err != nil {
				t.Fatal(err)
			}
			var platforms []string
			for _, d := range im.Manifests {
				arch := d.Platform.Architecture
				platforms = append(platforms, d.Platform.String())
				if d.Digest != digests[list+"-"+arch] {
					t.Errorf("the list's %s entry is %s, the %s tag %s: one tag per platform, never overwritten", d.Platform, d.Digest, list+"-"+arch, digests[list+"-"+arch])
				}
				img, err := idx.Image(d.Digest)
				if err != nil {
					t.Fatal(err)
				}
				if cf := config(t, img); cf.OS != "linux" || cf.Architecture != arch {
					t.Errorf("%s: the config says %s/%s", d.Platform, cf.OS, cf.Architecture)
				}
				fs := flatten(t, img)
				wantStaticELF(t, d.Platform.String()+" /kiln/executor", []byte(fs["/kiln/executor"].data), elfMachines[arch])
				if got, want := sha256Hex([]byte(fs["/kiln/executor"].data)), sha256File(t, filepath.Join(dist, "kiln-linux-"+arch)); got != want {
					t.Errorf("%s: /kiln/executor is not the released kiln-linux-%s", d.Platform, arch)
				}
				if flavour == "-debug" {
					sh, ok := fs["/busybox/sh"]
					if !ok || sh.hdr.Linkname != "busybox" {
						t.Errorf("%s: /busybox/sh is missing or not a link to busybox: %+v", d.Platform, sh.hdr)
					}
					wantStaticELF(t, d.Platform.String()+" /busybox/busybox", []byte(fs["/busybox/busybox"].data), elfMachines[arch])
				} else if _, ok := fs["/busybox/sh"]; ok {
					t.Errorf("%s: the executor image has /busybox/sh", d.Platform)
				}
			}
			slices.Sort(platforms)
			if want := []string{"linux/amd64", "linux/arm64"}; !slices.Equal(platforms, want) {
				t.Errorf("platforms %v, want %v", platforms, want)
			}
		})
	}

	t.Run("pushed", func(t *testing.T) {
		pushed := map[string]v1.Hash{}
		for _, tag := range wantTags {
			pushed[tag] = digests[tag]
		}
		pushed["latest"], pushed["debug"] = digests[version], digests[version+"-debug"]
		for tag, want := range pushed {
			if got := remoteDigest(t, reg, repo+":"+tag); got != want {
				t.Errorf("%s:%s is %s, want %s", repo, tag, got, want)
			}
		}
	})

	// The README's mirroring recipe: one push-index per list, into
	// another registry, keeps the lists' digests.
	t.Run("mirror", func(t *testing.T) {
		mirror := testregistry.Start(t)
		for _, list := range []string{version, version + "-debug"} {
			target := mirror.Ref("tools/kiln:" + list)
			out, err := exec.Command(kiln, "manifest", "push-index", "--docker-config", reg.DockerConfigDir,
				"--registry-certificate", reg.Host+"="+reg.CAFile, "--insecure-registry", mirror.Host,
				target, repo+":"+list).CombinedOutput()
			if err != nil {
				t.Fatalf("kiln manifest push-index %s: %v\n%s", target, err, out)
			}
			if got := remoteDigest(t, mirror, target); got != digests[list] {
				t.Errorf("the mirrored %s is %s, the release's %s", target, got, digests[list])
			}
		}
	})

	// A busybox for another CPU (the one of this machine, when it is not
	// arm64) must stop the arm64 debug image, not give it no /busybox/sh.
	t.Run("wrong busybox", func(t *testing.T) {
		wrong := busybox["amd64"]
		cmd := exec.Command("hack/images.sh")
		cmd.Dir = testutil.RepoRoot()
		cmd.Env = append(os.Environ(), "PLATFORM=linux/arm64", "BUSYBOX="+wrong, "KILN="+kiln,
			"BINARY="+filepath.Join(dist, "kiln-linux-arm64"), "OUT="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), fmt.Sprintf("BUSYBOX %q does not fit linux/arm64", wrong)) {
			t.Errorf("hack/images.sh with an amd64 busybox for linux/arm64: %v\n%s", err, out)
		}
	})

	// The arm64 half again (amd64's images are built twice by
	// TestExecutorImageUnderRunc): the same binary and images.
	t.Run("reproducible", func(t *testing.T) {
		again := release(t, kiln, filepath.Join(t.TempDir(), "dist"), append(vars, "PLATFORMS=linux/arm64")...)
		for _, f := range []string{"images.txt", "SHA256SUMS"} {
			var first []string
			for _, line := range strings.SplitAfter(readFileString(t, filepath.Join(dist, f)), "\n") {
				if strings.Contains(line, "arm64") {
					first = append(first, line)
				}
			}
			var second []string
			for _, line := range strings.SplitAfter(readFileString(t, filepath.Join(again, f)), "\n") {
				if strings.Contains(line, "arm64") {
					second = append(second, line)
				}
			}
			if len(first) == 0 || !slices.Equal(first, second) {
				t.Errorf("two runs on the same commit: the arm64 lines of %s differ:\n%s\n%s", f, strings.Join(first, ""), strings.Join(second, ""))
			}
		}
	})
}

func readImagesTxt(t *testing.T, path string) map[string]v1.Hash {
	t.Helper()
	out := map[string]v1.Hash{}
	for _, line := range strings.Split(strings.TrimSpace(readFileString(t, path)), "\n") {
		tag, d, ok := strings.Cut(line, " ")
		h, err := v1.NewHash(d)
		if !ok || err != nil {
			t.Fatalf("%s: line %q: want TAG DIGEST", path, line)
		}
		out[tag] = h
	}
	return out
}

func readFileString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256Hex(b)
}

// wantStaticELF checks that data is an ELF executable for machine that
// needs no dynamic loader: the images are FROM scratch.
func wantStaticELF(t *testing.T, what string, data []byte, machine elf.Machine) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Errorf("%s: not an ELF file: %v", what, err)
		return
	}
	if f.Machine != machine {
		t.Errorf("%s: built for %s, want %s", what, f.Machine, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s: dynamically linked", what)
		}
	}
}

func remoteDigest(t *testing.T, reg *testregistry.Registry, ref string) v1.Hash {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(r, reg.RemoteOptions()...)
	if err != nil {
		t.Fatalf("%s: %v", ref, err)
	}
	return desc.Digest
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
