package integration

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/testimage"
	"github.com/kiln-build/kiln/internal/testutil"
)

// These tests attack the RUN sandbox from a Dockerfile, as a merge request
// in a CI builder could (issue 9): the machine's loopback services, device
// nodes, system calls Docker's profile denies, kiln's credentials and
// kiln's own files in in-place isolation.

// serve answers every HTTP request to ln with reply, until ln is closed.
// HTTP with a Content-Length, like package downloads: Debian 12's pasta
// is slow to pass on the end of connections that the server closes.
func serve(t *testing.T, ln net.Listener, reply string) {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, reply)
	})}
	t.Cleanup(func() { srv.Close() })
	go srv.Serve(ln)
}

func randomSuffix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// serverNamespace makes a network namespace standing for a host on the
// network, linked to this machine by a veth pair, and listens there. It
// returns the server's address. Everything is removed at the end.
func serverNamespace(t *testing.T, reply string) string {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip not found (Debian package iproute2)")
	}
	id := randomSuffix(t)
	ns, hostIf, nsIf := "kiln-test-"+id, "kt"+id+"h", "kt"+id+"n"
	// A /30 of its own in 10.199.0.0/16, only on this machine.
	b := make([]byte, 1)
	rand.Read(b)
	subnet := fmt.Sprintf("10.199.%d.", b[0])
	ipCmd := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ipCmd("netns", "add", ns)
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", hostIf).Run()
		exec.Command("ip", "netns", "del", ns).Run()
	})
	ipCmd("link", "add", hostIf, "type", "veth", "peer", "name", nsIf, "netns", ns)
	ipCmd("addr", "add", subnet+"1/30", "dev", hostIf)
	ipCmd("link", "set", hostIf, "up")
	ipCmd("-n", ns, "addr", "add", subnet+"2/30", "dev", nsIf)
	ipCmd("-n", ns, "link", "set", nsIf, "up")
	ipCmd("-n", ns, "link", "set", "lo", "up")

	// The listening socket is made by a thread that entered the namespace;
	// it stays there.
	ln := make(chan net.Listener, 1)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // the thread ends with the goroutine
		f, err := os.Open("/run/netns/" + ns)
		if err == nil {
			err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
			f.Close()
		}
		if err != nil {
			errc <- err
			return
		}
		l, err := net.Listen("tcp", subnet+"2:0")
		if err != nil {
			errc <- err
			return
		}
		ln <- l
	}()
	select {
	case err := <-errc:
		t.Fatalf("listening in %s: %v", ns, err)
	case l := <-ln:
		serve(t, l, reply)
		return l.Addr().String()
	}
	return ""
}

// TestRunNetworkIsolation builds with a RUN network of its own (pasta and
// slirp4netns, each when installed): a service on the machine's loopback
// is out of reach, unless RUN --network=host asks for the machine's
// network, and connections out to another host work.
func TestRunNetworkIsolation(t *testing.T) {
	testutil.RequireRoot(t, "RUN with chroot isolation, network namespaces")
	e := newEnv(t)
	base := pushBusybox(e)
	loopback, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, loopback, "loopback secret\n")
	remote := serverNamespace(t, "outbound works\n")
	get := func(addr string) string {
		// (busybox 1.35 wget crashes with -T.)
		return fmt.Sprintf("(timeout 20 wget -q -O - http://%s/ || echo failed) > ", addr)
	}
	dir := writeFiles(t, map[string]string{
		"Dockerfile": "FROM " + base + "\n" +
			"RUN " + get(loopback.Addr().String()) + "/loopback-default; " + get(remote) + "/outbound\n" +
			"RUN --network=host " + get(loopback.Addr().String()) + "/loopback-host\n" +
			"RUN --network=none " + get(remote) + "/outbound-none\n",
	})
	ran := 0
	for _, kind := range []string{"pasta", "slirp4netns"} {
		t.Run(kind, func(t *testing.T) {
			if _, err := exec.LookPath(kind); err != nil {
				t.Skipf("%s not installed (make test-deps installs it)", kind)
			}
			ran++
			dest := e.ref("test/run-network:" + kind)
			// This machine may look like a container (/.dockerenv), where
			// kiln would share its network: ask for user-mode networking.
			r := e.run(dir, []string{"build", "--context", dir, "--insecure-registry", e.reg.Host, "--kiln-dir", t.TempDir(),
				"--isolation", "chroot", "-d", dest}, "KILN_RUN_NETWORK="+kind)
			if r.err != nil {
				t.Fatalf("%v\n%s", r.err, r.out)
			}
			if n := strings.Count(r.out, "RUN network: a network namespace of its own, connected by "+kind); n != 1 {
				t.Errorf("the RUN network is logged %d times, want once per build:\n%s", n, r.out)
			}
			fs := flatten(t, e.pull(dest))
			wantFile(t, fs, "/loopback-default", "failed\n", 0o644, 0, 0)
			wantFile(t, fs, "/outbound", "outbound works\n", 0o644, 0, 0)
			wantFile(t, fs, "/loopback-host", "loopback secret\n", 0o644, 0, 0)
			wantFile(t, fs, "/outbound-none", "failed\n", 0o644, 0, 0)
		})
	}
	if ran == 0 {
		t.Skip("neither pasta nor slirp4netns is installed")
	}
}

// buildProbe builds the sandbox's system call probe statically.
func buildProbe(t *testing.T, dst string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", dst, "./pkg/sandbox/testdata/syscallprobe")
	cmd.Dir = testutil.RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the system call probe: %v\n%s", err, out)
	}
}

// deviceLayer holds what a hostile base image or ADD archive can place:
// world-writable device nodes.
func deviceLayer(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Name: "devices/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "devices/zero", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 5},
		{Name: "devices/loop0", Typeflag: tar.TypeBlock, Mode: 0o666, Devmajor: 7, Devminor: 0},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestRunDevicesAndSystemCalls: device nodes from a layer cannot be
// opened, a RUN cannot create device nodes, and the system calls Docker's
// default profile denies fail, while ordinary work goes on.
func TestRunDevicesAndSystemCalls(t *testing.T) {
	testutil.RequireRoot(t, "RUN with chroot isolation, device nodes in a layer")
	e := newEnv(t)
	data := deviceLayer(t)
	devices, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(testimage.Busybox(t), devices)
	if err != nil {
		t.Fatal(err)
	}
	base := e.push("base/devices:1", img)
	dir := writeFiles(t, map[string]string{
		"Dockerfile": `FROM ` + base + `
COPY probe /probe
RUN /probe open:/devices/zero open:/devices/loop0 open:/dev/zero open:/dev/null add_key keyctl unshare-user clone3 personality \
      vsock-socket mknod-char mknod-fifo chroot > /probe.txt
RUN (mknod /made-char c 1 3 2>&1 || echo refused) > /mknod.txt; (unshare -U true 2>&1 || echo refused) > /unshare.txt
RUN echo work > /work.txt && mkfifo /tmp/fifo && ls /devices > /devices.txt
`,
	})
	buildProbe(t, filepath.Join(dir, "probe"))
	dest := e.ref("test/run-devices:1")
	e.build(dir, "--isolation", "chroot", "-d", dest)
	fs := flatten(t, e.pull(dest))
	wantFile(t, fs, "/probe.txt", `open:/devices/zero=EACCES
open:/devices/loop0=EACCES
open:/dev/zero=OK
open:/dev/null=OK
add_key=EPERM
keyctl=EPERM
unshare-user=EPERM
clone3=ENOSYS
personality=EPERM
vsock-socket=EPERM
mknod-char=EPERM
mknod-fifo=OK
chroot=OK
`, 0o644, 0, 0)
	for _, f := range []string{"/mknod.txt", "/unshare.txt"} {
		if e, ok := fs[f]; !ok || !strings.HasSuffix(e.data, "refused\n") || !strings.Contains(e.data, "Operation not permitted") {
			t.Errorf("%s: %q, want the command refused with EPERM", f, e.data)
		}
	}
	if _, ok := fs["/made-char"]; ok {
		t.Error("a RUN created a device node")
	}
	wantFile(t, fs, "/work.txt", "work\n", 0o644, 0, 0)
	wantFile(t, fs, "/devices.txt", "loop0\nzero\n", 0o644, 0, 0)
}

// TestInPlaceKeepsCredentialsAndKilnFiles runs in-place builds in a
// throwaway root laid out like kiln's debug image, with a registry password
// in the environment of kiln and of the shell that starts it (as a CI job
// has it). A RUN can read neither environment; a RUN that replaces kiln's
// binary or adds a CA certificate fails the build and kiln puts its files
// back, so the next build in the container runs the real kiln; a kiln
// binary replaced behind kiln's back makes the next build refuse to start.
func TestInPlaceKeepsCredentialsAndKilnFiles(t *testing.T) {
	requireThrowawayRoot(t)
	e := newEnv(t)
	base := pushBusybox(e)
	secret := "s3cr3t-" + randomSuffix(t)

	root := t.TempDir()
	mustMkdir(t, root, "kiln/ssl/certs", "kaniko", "busybox", "workspace", "proc", "dev", "sys", "tmp", "oldroot")
	copyFile(t, testutil.Kiln(t), filepath.Join(root, "kiln/executor"), 0o755)
	for link, target := range map[string]string{"kiln/kiln": "executor", "kaniko/executor": "/kiln/executor"} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "kiln/ssl/certs/ca-certificates.crt"), []byte("the CAs kiln trusts\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	copyFile(t, "/bin/busybox", filepath.Join(root, "busybox/busybox"), 0o755)
	for _, applet := range []string{"sh", "umount", "rmdir", "cat", "cp", "rm", "sha256sum"} {
		if err := os.Symlink("busybox", filepath.Join(root, "busybox", applet)); err != nil {
			t.Fatal(err)
		}
	}
	kilnSum := sha256.Sum256(readFile(t, testutil.Kiln(t)))

	workspace := writeFiles(t, map[string]string{
		// Every process's environment, and what a RUN can do with kiln's
		// process.
		"Dockerfile.steal": `FROM ` + base + `
RUN for p in /proc/[0-9]*; do \
      if tr '\0' '\n' <$p/environ 2>/dev/null | grep -q "` + secret + `"; then echo "$p: $(tr '\0' ' ' <$p/cmdline)"; fi; \
    done > /stolen
`,
		"Dockerfile.tamper": `FROM ` + base + `
RUN rm /kiln/executor && printf '#!/busybox/sh\necho pwned\n' > /kiln/executor && chmod 755 /kiln/executor && \
    echo 'attacker CA' > /kiln/ssl/certs/attacker.pem
`,
		"Dockerfile.clean": "FROM " + base + "\nRUN echo clean > /clean\n",
	})

	script := `set -e
mount --make-rprivate /
mount --bind "$ROOT" "$ROOT"
mount --bind "$WORKSPACE" "$ROOT/workspace"
mount -t proc proc "$ROOT/proc"
mount --rbind /dev "$ROOT/dev"
mount --rbind /sys "$ROOT/sys"
cd "$ROOT"
pivot_root . oldroot
exec /busybox/sh -c 'umount -l /oldroot && rmdir /oldroot && cd /workspace
build() { /kiln/executor --isolation in-place --force --context /workspace --insecure-registry "$REGISTRY" "$@"; }
build --dockerfile Dockerfile.steal --destination "$REGISTRY/test/inplace-steal:1"
if build --dockerfile Dockerfile.tamper --destination "$REGISTRY/test/inplace-tamper:1" > /workspace/tamper.log 2>&1; then
  echo "the tampering build succeeded"; exit 1
fi
sha256sum /kiln/executor > /workspace/executor.sum
ls /kiln/ssl/certs > /workspace/certs.list
build --dockerfile Dockerfile.clean --destination "$REGISTRY/test/inplace-clean:1"
# What a RUN that killed kiln first could leave behind:
rm /kaniko/executor && cp /busybox/busybox /kaniko/executor
if build --dockerfile Dockerfile.clean --destination "$REGISTRY/test/inplace-clean:2" > /workspace/refused.log 2>&1; then
  echo "a build started next to a replaced kiln binary"; exit 1
fi'
`
	cmd := exec.Command("unshare", "--mount", "--fork", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "ROOT="+root, "WORKSPACE="+workspace, "REGISTRY="+e.reg.Host,
		// A password for a registry the builds do not use, as CI
		// variables hold them.
		"KILN_REGISTRY_SECRETS_EXAMPLE_COM_USER=ci", "KILN_REGISTRY_SECRETS_EXAMPLE_COM_PASSWORD="+secret)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("in-place builds: %v\n%s", err, out.String())
	}

	fs := flatten(t, e.pull(e.ref("test/inplace-steal:1")))
	wantFile(t, fs, "/stolen", "", 0o644, 0, 0)

	tamper := string(readFile(t, filepath.Join(workspace, "tamper.log")))
	for _, want := range []string{"changed kiln's own files, which kiln has put back", `"/kiln/executor"`, `"/kiln/ssl/certs/attacker.pem"`} {
		if !strings.Contains(tamper, want) {
			t.Errorf("the tampering build's output lacks %q:\n%s", want, tamper)
		}
	}
	if _, err := e.tryPull(e.ref("test/inplace-tamper:1")); err == nil {
		t.Error("the tampering build pushed an image")
	}
	if sum := string(readFile(t, filepath.Join(workspace, "executor.sum"))); !strings.HasPrefix(sum, hex.EncodeToString(kilnSum[:])) {
		t.Errorf("/kiln/executor after the tampering build: %s, want kiln's %x", sum, kilnSum)
	}
	if certs := string(readFile(t, filepath.Join(workspace, "certs.list"))); certs != "ca-certificates.crt\n" {
		t.Errorf("/kiln/ssl/certs after the tampering build: %q", certs)
	}
	wantFile(t, flatten(t, e.pull(e.ref("test/inplace-clean:1"))), "/clean", "clean\n", 0o644, 0, 0)

	refused := string(readFile(t, filepath.Join(workspace, "refused.log")))
	if !strings.Contains(refused, `kiln's own binary "/kaniko/executor" is not the kiln that is running`) {
		t.Errorf("a build next to a replaced kiln binary:\n%s", refused)
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
