package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/kiln-build/kiln/internal/testimage"
	"github.com/kiln-build/kiln/internal/testregistry"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/pkg/rootfs"
)

// defaultCaps is containerd's default capability set: what a container in a
// Kubernetes pod gets without securityContext changes. No CAP_SYS_ADMIN.
var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// TestExecutorImageUnderRunc runs kiln's debug image (built by `make
// images`) under runc with the security of a default Kubernetes pod, the way
// a Jenkins or GitLab job does, and builds and pushes from inside it.
func TestExecutorImageUnderRunc(t *testing.T) {
	testutil.RequireRoot(t, "runc")
	testutil.RequireFile(t, "/bin/busybox", "busybox-static")
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc not found: install the Debian package runc (make test-deps does)")
	}
	if testing.Short() {
		t.Skip("builds the executor images: not in -short mode")
	}
	images := buildImages(t)

	reg := testregistry.Start(t, testregistry.WithTLS(), testregistry.WithBasicAuth("ci", "ci-secret"))
	baseRef := pushTo(t, reg, "base/busybox:1", testimage.Busybox(t))

	t.Run("root", func(t *testing.T) {
		bundle := newBundle(t, images.debug)
		ws := writeFiles(t, map[string]string{
			"Dockerfile": `ARG BASE
FROM ${BASE} AS build
RUN mkdir -p /out && echo "built in a pod" > /out/result && adduser -D -u 1234 builder 2>/dev/null || true
FROM ${BASE}
COPY --from=build /out/result /app/result
RUN echo second > /app/second && rm /bin/vi
`,
			"Dockerfile.second": "ARG BASE\nFROM ${BASE}\nRUN echo again > /again\n",
			"Dockerfile.cached": "ARG BASE\nFROM ${BASE}\nCOPY Dockerfile.second /in\nRUN cat /in > /out && echo cached-run >> /out\n",
		})
		copyFile(t, reg.CAFile, filepath.Join(ws, "ca.pem"), 0o644)
		// The first build trusts the registry through a CA bundle mounted
		// where kaniko's image keeps them, /kaniko/ssl/certs.
		caDir := t.TempDir()
		copyFile(t, reg.CAFile, filepath.Join(caDir, "additional-ca-cert-bundle.crt"), 0o644)
		script := fmt.Sprintf(`set -e
cd /workspace
/kiln/executor --context dir:///workspace --destination %[1]s/e2e/app:1 --build-arg BASE=%[2]s \
  --digest-file /workspace/digest-1
/kiln/executor --context /workspace --dockerfile Dockerfile.second --destination %[1]s/e2e/app:2 \
  --build-arg BASE=%[2]s --registry-certificate %[1]s=/workspace/ca.pem --digest-file /workspace/digest-2
for run in cold warm; do
  /kiln/executor --context /workspace --dockerfile Dockerfile.cached --destination %[1]s/e2e/cached:1 \
    --build-arg BASE=%[2]s --cache=true --cache-repo %[1]s/e2e/cache --reproducible > /workspace/cache-$run.log 2>&1
done
ls /busybox/sh /kiln/.docker/config.json /kaniko/executor /kiln/kiln > /workspace/survivors
ls / > /workspace/root-listing
`, reg.Host, baseRef)
		out, config := runc(t, bundle, ws, reg, 0, script, specs.Mount{Destination: "/kaniko/ssl/certs", Type: "bind", Source: caDir, Options: []string{"rbind", "ro"}})
		if after, err := os.ReadFile(config); err != nil || !bytes.Contains(after, []byte(reg.Host)) {
			t.Errorf("the mounted docker config after the builds: %q, %v", after, err)
		}
		if !strings.Contains(out, "Isolation in-place") {
			t.Errorf("expected in-place isolation in a default pod:\n%s", out)
		}
		fs := flatten(t, pullFrom(t, reg, "e2e/app:1"))
		wantFile(t, fs, "/app/result", "built in a pod\n", 0o644, 0, 0)
		wantFile(t, fs, "/app/second", "second\n", 0o644, 0, 0)
		for _, p := range []string{"/bin/vi", "/kiln", "/workspace", "/busybox", "/kaniko", "/out"} {
			if _, ok := fs[p]; ok {
				t.Errorf("%s is in the image", p)
			}
		}
		// The cached rebuild in the same container: the RUN from the cache
		// (COPY runs: kaniko's --cache-copy-layers is off by default),
		// nothing unpacked.
		cold, _ := os.ReadFile(filepath.Join(ws, "cache-cold.log"))
		warm, _ := os.ReadFile(filepath.Join(ws, "cache-warm.log"))
		if n := strings.Count(string(cold), ", cached)"); n != 0 || !strings.Contains(string(cold), "Unpacked") {
			t.Errorf("cold cached build: %d steps from the cache\n%s", n, cold)
		}
		if n := strings.Count(string(warm), ", cached)"); n != 1 || strings.Contains(string(warm), "Unpacked") {
			t.Errorf("warm cached build: %d steps from the cache, want 1\n%s", n, warm)
		}
		wantFile(t, flatten(t, pullFrom(t, reg, "e2e/cached:1")), "/out", "ARG BASE\nFROM ${BASE}\nRUN echo again > /again\ncached-run\n", 0o644, 0, 0)
		fs2 := flatten(t, pullFrom(t, reg, "e2e/app:2"))
		wantFile(t, fs2, "/again", "again\n", 0o644, 0, 0)
		if _, ok := fs2["/app/result"]; ok {
			t.Error("the second build sees the first build's files")
		}
		// The workspace, the debug shell and the config survived both
		// builds; "/" of the container is what the image shipped.
		survivors, _ := os.ReadFile(filepath.Join(ws, "survivors"))
		for _, p := range []string{"/busybox/sh", "/kiln/.docker/config.json", "/kaniko/executor", "/kiln/kiln"} {
			if !strings.Contains(string(survivors), p) {
				t.Errorf("%s did not survive: %s", p, survivors)
			}
		}
		for _, f := range []string{"Dockerfile", "Dockerfile.second", "ca.pem", "digest-1", "digest-2", "cache-warm.log"} {
			if _, err := os.Stat(filepath.Join(ws, f)); err != nil {
				t.Errorf("workspace: %v", err)
			}
		}
		listing, _ := os.ReadFile(filepath.Join(ws, "root-listing"))
		if got := strings.Fields(string(listing)); strings.Join(got, " ") != "busybox dev etc kaniko kiln proc root sys tmp workspace" {
			t.Errorf("\"/\" after the builds: %v", got)
		}
	})

	t.Run("non-root", func(t *testing.T) {
		bundle := newBundle(t, images.debug)
		ws := writeFiles(t, map[string]string{
			"Dockerfile.copy": "ARG BASE\nFROM ${BASE}\nCOPY hello.txt /hello.txt\nUSER nobody\n",
			"Dockerfile.run":  "ARG BASE\nFROM ${BASE}\nRUN echo needs root\n",
			"hello.txt":       "hello",
		})
		copyFile(t, reg.CAFile, filepath.Join(ws, "ca.pem"), 0o644)
		if err := filepath.Walk(ws, func(p string, _ os.FileInfo, err error) error { return os.Chown(p, 1000, 1000) }); err != nil {
			t.Fatal(err)
		}
		script := fmt.Sprintf(`set -e
cd /workspace
/kiln/executor --context /workspace --dockerfile Dockerfile.copy --destination %[1]s/e2e/nonroot:1 \
  --build-arg BASE=%[2]s --registry-certificate %[1]s=/workspace/ca.pem
if /kiln/executor --context /workspace --dockerfile Dockerfile.run --destination %[1]s/e2e/nonroot:2 \
  --build-arg BASE=%[2]s --registry-certificate %[1]s=/workspace/ca.pem 2> /workspace/run-error; then
  echo "a RUN build succeeded as a non-root user" >&2; exit 1
fi
`, reg.Host, baseRef)
		runc(t, bundle, ws, reg, 1000, script)
		wantFile(t, flatten(t, pullFrom(t, reg, "e2e/nonroot:1")), "/hello.txt", "hello", 0o644, 0, 0)
		msg, _ := os.ReadFile(filepath.Join(ws, "run-error"))
		if !strings.Contains(string(msg), "this Dockerfile has RUN instructions, and RUN cannot be isolated here") ||
			!strings.Contains(string(msg), "run kiln as root") {
			t.Errorf("unclear error for RUN as non-root:\n%s", msg)
		}
		if _, err := pullFromErr(reg, "e2e/nonroot:2"); err == nil {
			t.Error("the failed build pushed an image")
		}
	})
}

type builtImages struct{ executor, debug v1.Image }

// buildImages runs `make images` (hack/images.sh) twice into temporary
// directories and checks that the digests are the same.
func buildImages(t *testing.T) builtImages {
	t.Helper()
	var digests [2]string
	var out string
	for i := range digests {
		out = t.TempDir()
		cmd := exec.Command(filepath.Join(testutil.RepoRoot(), "hack/images.sh"))
		cmd.Dir = testutil.RepoRoot()
		cmd.Env = append(os.Environ(), "OUT="+out)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("hack/images.sh: %v\n%s", err, b)
		}
		d, err := os.ReadFile(filepath.Join(out, "debug.digest"))
		if err != nil {
			t.Fatal(err)
		}
		digests[i] = string(d)
	}
	if digests[0] != digests[1] {
		t.Errorf("two builds of the debug image gave %s and %s: not reproducible", digests[0], digests[1])
	}
	return builtImages{executor: layoutImage(t, filepath.Join(out, "executor")), debug: layoutImage(t, filepath.Join(out, "debug"))}
}

func layoutImage(t *testing.T, dir string) v1.Image {
	t.Helper()
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil || len(m.Manifests) != 1 {
		t.Fatalf("layout %s: %v %v", dir, m, err)
	}
	img, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// newBundle extracts img as the root filesystem of an OCI bundle.
func newBundle(t *testing.T, img v1.Image) string {
	t.Helper()
	bundle := t.TempDir()
	root := filepath.Join(bundle, "rootfs")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		err = rootfs.Apply(context.Background(), root, rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	return bundle
}

// runc runs script with /busybox/sh in the bundle as uid, with a workspace
// volume and the registry's docker config mounted read-only at
// /kiln/.docker/config.json, like a pod with a dockerconfigjson secret.
func runc(t *testing.T, bundle, workspace string, reg *testregistry.Registry, uid uint32, script string, extra ...specs.Mount) (out, config string) {
	t.Helper()
	etc := t.TempDir()
	for f, content := range map[string]string{
		"hosts":       "127.0.0.1 localhost\n10.1.2.3 kiln-e2e\n",
		"hostname":    "kiln-e2e\n",
		"resolv.conf": "nameserver 127.0.0.1\n",
	} {
		if err := os.WriteFile(filepath.Join(etc, f), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A dockerconfigjson secret volume: mode 0644 (Kubernetes' defaultMode).
	config = filepath.Join(etc, "config.json")
	copyFile(t, filepath.Join(reg.DockerConfigDir, "config.json"), config, 0o644)
	spec := podSpec(uid, script, []specs.Mount{
		{Destination: "/workspace", Type: "bind", Source: workspace, Options: []string{"rbind", "rw"}},
		{Destination: "/kiln/.docker/config.json", Type: "bind", Source: config, Options: []string{"rbind", "ro"}},
		{Destination: "/etc/hosts", Type: "bind", Source: filepath.Join(etc, "hosts"), Options: []string{"rbind", "rw"}},
		{Destination: "/etc/hostname", Type: "bind", Source: filepath.Join(etc, "hostname"), Options: []string{"rbind", "rw"}},
		{Destination: "/etc/resolv.conf", Type: "bind", Source: filepath.Join(etc, "resolv.conf"), Options: []string{"rbind", "rw"}},
	}, extra...)
	b, err := json.MarshalIndent(spec, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("kiln-e2e-%d", time.Now().UnixNano())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "runc", "run", "--bundle", bundle, id)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err = cmd.Run()
	exec.Command("runc", "delete", "-f", id).Run()
	if err != nil {
		t.Fatalf("runc run (uid %d): %v\n%s", uid, err, buf.String())
	}
	return buf.String(), config
}

// podSpec is the OCI spec of a container in a default Kubernetes pod, as
// containerd makes it: default capabilities, Docker's default seccomp
// profile, masked and read-only kernel paths, no privileges. It shares the
// host network only so that the test registry on 127.0.0.1 is reachable.
func podSpec(uid uint32, script string, mounts []specs.Mount, extra ...specs.Mount) *specs.Spec {
	caps := &specs.LinuxCapabilities{Bounding: defaultCaps}
	if uid == 0 {
		caps.Effective, caps.Permitted = defaultCaps, defaultCaps
	}
	s := &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: "rootfs"},
		Process: &specs.Process{
			User: specs.User{UID: uid, GID: uid},
			Args: []string{"/busybox/sh", "-c", script},
			Env: []string{
				"PATH=/kiln:/busybox", "HOME=/root", "DOCKER_CONFIG=/kiln/.docker/", "SSL_CERT_DIR=/kiln/ssl/certs:/kaniko/ssl/certs",
				"KUBERNETES_SERVICE_HOST=10.96.0.1", "KUBERNETES_SERVICE_PORT=443", "HOSTNAME=kiln-e2e",
			},
			Cwd:          "/workspace",
			Capabilities: caps,
		},
		Hostname: "kiln-e2e",
		Mounts: append([]specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		}, append(mounts, extra...)...),
		Linux: &specs.Linux{
			CgroupsPath: "/kubepods/besteffort/pod-kiln-e2e/" + fmt.Sprint(time.Now().UnixNano()),
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}, {Type: specs.MountNamespace},
			},
			Resources: &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}},
			MaskedPaths: []string{
				"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
				"/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
			},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
	profile, err := seccomp.GetDefaultProfile(s)
	if err != nil {
		panic(err)
	}
	s.Linux.Seccomp = profile
	return s
}

func pushTo(t *testing.T, reg *testregistry.Registry, repoTag string, img v1.Image) string {
	t.Helper()
	ref, err := name.ParseReference(reg.Ref(repoTag))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, reg.RemoteOptions()...); err != nil {
		t.Fatal(err)
	}
	return ref.String()
}

func pullFromErr(reg *testregistry.Registry, repoTag string) (v1.Image, error) {
	ref, err := name.ParseReference(reg.Ref(repoTag))
	if err != nil {
		return nil, err
	}
	return remote.Image(ref, reg.RemoteOptions()...)
}

func pullFrom(t *testing.T, reg *testregistry.Registry, repoTag string) v1.Image {
	t.Helper()
	img, err := pullFromErr(reg, repoTag)
	if err != nil {
		t.Fatalf("pulling %s: %v", repoTag, err)
	}
	return img
}
