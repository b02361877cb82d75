package sandbox

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/testutil"
)

var (
	probeMu    sync.Mutex
	probeBuilt = map[string]string{}
	probeDir   string
)

// buildProbe builds testdata/syscallprobe, statically, for goarch, once per
// test process.
func buildProbe(t *testing.T, goarch string) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go command to build the system call probe")
	}
	probeMu.Lock()
	defer probeMu.Unlock()
	if p, ok := probeBuilt[goarch]; ok {
		return p
	}
	if probeDir == "" {
		dir, err := os.MkdirTemp("", "kiln-probe-bin-")
		if err != nil {
			t.Fatal(err)
		}
		probeDir = dir
	}
	p := filepath.Join(probeDir, "probe-"+goarch)
	cmd := exec.Command("go", "build", "-o", p, "./pkg/sandbox/testdata/syscallprobe")
	cmd.Dir = testutil.RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the system call probe for %s: %v\n%s", goarch, err, out)
	}
	probeBuilt[goarch] = p
	return p
}

// probeResults parses the probe's "NAME=RESULT" lines.
func probeResults(c checker, out string) map[string]string {
	c.Helper()
	res := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			c.Fatalf("probe output line %q", line)
		}
		res[k] = v
	}
	return res
}

// wantProbe runs the probe at probe (a path in rootfs) with the checks of
// want, and compares.
func wantProbe(c checker, sb Sandbox, rootfs, probe string, want map[string]string) {
	c.Helper()
	args := []string{probe}
	for k := range want {
		args = append(args, k)
	}
	out := mustRun(c, sb, &Spec{Rootfs: rootfs, Args: args, Env: []string{"PATH=/bin"}})
	got := probeResults(c, out)
	for k, v := range want {
		if got[k] != v {
			c.Errorf("%s: %s, want %s", k, got[k], v)
		}
	}
}

// runSyscallExpectations are what a RUN as root may and may not do: system
// calls Docker's default profile denies, capabilities beyond a RUN's, and
// what stays allowed.
var runSyscallExpectations = map[string]string{
	"add_key":      "EPERM",
	"keyctl":       "EPERM",
	"unshare-user": "EPERM",
	"clone3":       "ENOSYS",
	"personality":  "EPERM",
	"vsock-socket": "EPERM",
	"mknod-char":   "EPERM", // no CAP_MKNOD
	"mknod-fifo":   "OK",
	"chroot":       "OK", // CAP_SYS_CHROOT, as in Docker
}

// TestChrootSeccompAndCapabilities runs the probe as a RUN, natively and,
// where the kernel runs 32-bit programs, as an i386 program.
func TestChrootSeccompAndCapabilities(t *testing.T) {
	sb := newChroot(t)
	rootfs := newRootfs(t)
	copyTestFile(t, buildProbe(t, runtime.GOARCH), filepath.Join(rootfs, "probe"))
	wantProbe(t, sb, rootfs, "/probe", runSyscallExpectations)

	if runtime.GOARCH == "amd64" {
		p386 := buildProbe(t, "386")
		if err := exec.Command(p386, "chroot").Run(); err != nil {
			t.Logf("this kernel does not run i386 programs (%v): 32-bit table not tried", err)
		} else {
			copyTestFile(t, p386, filepath.Join(rootfs, "probe386"))
			wantProbe(t, sb, rootfs, "/probe386", runSyscallExpectations)
		}
	}

	// No ambient or inheritable capabilities; a non-root command has none.
	status := mustRun(t, sb, shellSpec(rootfs, "grep -E '^Cap(Inh|Amb|Eff|Bnd)' /proc/self/status"))
	want := fmt.Sprintf("CapInh:\t0000000000000000\nCapEff:\t%016x\nCapBnd:\t%016x\nCapAmb:\t0000000000000000\n", uint64(runCapabilities), uint64(runCapabilities))
	if status != want {
		t.Errorf("capabilities of a root RUN:\n%s\nwant:\n%s", status, want)
	}
	spec := shellSpec(rootfs, "grep -E '^Cap(Prm|Eff)' /proc/self/status")
	spec.UID, spec.GID = 1000, 1000
	if got := mustRun(t, sb, spec); got != "CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n" {
		t.Errorf("capabilities of a RUN as uid 1000: %q", got)
	}
}

func copyTestFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestChrootDevices checks that device nodes in the root filesystem cannot
// be opened (it is mounted nodev), while /dev works.
func TestChrootDevices(t *testing.T) {
	sb := newChroot(t)
	rootfs := newRootfs(t)
	// What a layer or an ADD archive could place: a world-writable block
	// device and a character device.
	if err := unix.Mknod(filepath.Join(rootfs, "zero-node"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 5))); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(rootfs, "loop-node"), unix.S_IFBLK|0o666, int(unix.Mkdev(7, 0))); err != nil {
		t.Fatal(err)
	}
	copyTestFile(t, buildProbe(t, runtime.GOARCH), filepath.Join(rootfs, "probe"))
	wantProbe(t, sb, rootfs, "/probe", map[string]string{
		"open:/zero-node":   "EACCES",
		"open:/loop-node":   "EACCES",
		"open:/dev/zero":    "OK",
		"open:/dev/urandom": "OK",
	})
	out := mustRun(t, sb, &Spec{Rootfs: rootfs, Args: []string{"cat", "/proc/self/mountinfo"}, Env: []string{"PATH=/bin"}})
	mounts, err := ParseMountinfo(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mounts {
		nodev := strings.Contains(","+m.Options+",", ",nodev,")
		switch {
		case (m.MountPoint == "/" || m.MountPoint == "/dev") && !nodev:
			t.Errorf("%s is mounted %q, without nodev", m.MountPoint, m.Options)
		case m.MountPoint == "/dev/null" && nodev:
			t.Errorf("/dev/null is mounted %q: it must stay a usable device", m.Options)
		}
	}
}

// TestChrootNetworkPlans runs RUNs with each network the plan can give:
// user-mode networking (whichever of pasta and slirp4netns is installed),
// and the machine's network without CAP_NET_RAW. A service on the
// machine's loopback is reachable only with RUN --network=host.
func TestChrootNetworkPlans(t *testing.T) {
	testutil.RequireRoot(t, "chroot isolation creates namespaces and mounts")
	rootfs := newRootfs(t)
	copyTestFile(t, buildProbe(t, runtime.GOARCH), filepath.Join(rootfs, "probe"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("loopback service\n"))
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	reach := fmt.Sprintf("if nc 127.0.0.1 %d </dev/null 2>/dev/null | grep -q 'loopback service'; then echo reached; else echo refused; fi", port)

	for _, kind := range []string{netPasta, netSlirp, netHostNoRaw} {
		t.Run(kind, func(t *testing.T) {
			var plan netPlan
			if kind == netHostNoRaw {
				plan = netPlan{kind: kind}
			} else {
				t.Setenv(networkEnv, kind)
				p, err := planNetwork(func() (bool, string) { return true, "test" }, exec.LookPath, os.Getenv, openTun)
				if err != nil {
					t.Skip(err)
				}
				plan = p
			}
			sb := &namespaced{mode: ModeChroot, opts: options{workDir: t.TempDir(), log: logrus.StandardLogger()}, net: plan, seccomp: planSeccomp(true)}
			checkNetworkDefault(t, sb, rootfs)
			want := map[string]string{netPasta: "refused\n", netSlirp: "refused\n", netHostNoRaw: "reached\n"}[kind]
			if got := mustRun(t, sb, shellSpec(rootfs, reach)); got != want {
				t.Errorf("the machine's loopback service from a RUN: %q, want %q", got, want)
			}
			host := shellSpec(rootfs, reach)
			host.Network = NetworkHost
			if got := mustRun(t, sb, host); got != "reached\n" {
				t.Errorf("with RUN --network=host: %q, want reached", got)
			}
			// Raw sockets: fine in a network namespace of the RUN's own,
			// refused in the machine's.
			wantRaw := map[string]string{netPasta: "OK", netSlirp: "OK", netHostNoRaw: "EPERM"}[kind]
			wantProbe(t, sb, rootfs, "/probe", map[string]string{"raw-socket": wantRaw})
		})
	}
}

func TestPlanNetwork(t *testing.T) {
	installed := func(names ...string) func(string) (string, error) {
		return func(name string) (string, error) {
			for _, n := range names {
				if n == name {
					return "/usr/bin/" + name, nil
				}
			}
			return "", exec.ErrNotFound
		}
	}
	host := func() (bool, string) { return false, "no marker" }
	pod := func() (bool, string) { return true, "KUBERNETES_SERVICE_HOST is set" }
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == networkEnv {
				return v
			}
			return ""
		}
	}
	tunOK := func() error { return nil }
	noTun := func() error { return os.ErrPermission }
	for _, tc := range []struct {
		what      string
		container func() (bool, string)
		tools     []string
		env       string
		tun       func() error
		kind      string
		warn      bool
		err       string
	}{
		{"pod", pod, []string{"pasta"}, "", tunOK, netShared, false, ""},
		{"host with pasta", host, []string{"pasta", "slirp4netns"}, "", tunOK, netPasta, false, ""},
		{"host with slirp4netns", host, []string{"slirp4netns"}, "", tunOK, netSlirp, false, ""},
		{"host with neither", host, nil, "", tunOK, netHostNoRaw, true, ""},
		{"forced pasta in a pod", pod, []string{"pasta"}, "pasta", tunOK, netPasta, false, ""},
		{"forced slirp4netns", host, []string{"pasta", "slirp4netns"}, "slirp4netns", tunOK, netSlirp, false, ""},
		{"forced shared", host, []string{"pasta"}, "shared", tunOK, netShared, false, ""},
		{"forced but missing", host, nil, "pasta", tunOK, "", false, "Debian package passt"},
		{"unknown", host, nil, "bridge", tunOK, "", false, `KILN_RUN_NETWORK="bridge"`},
		{"host with pasta, no /dev/net/tun", host, []string{"pasta"}, "", noTun, netHostNoRaw, true, ""},
		{"forced pasta, no /dev/net/tun", host, []string{"pasta"}, "pasta", noTun, "", false, "cannot open /dev/net/tun"},
	} {
		plan, err := planNetwork(tc.container, installed(tc.tools...), env(tc.env), tc.tun)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want an error with %q", tc.what, err, tc.err)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.what, err)
		case plan.kind != tc.kind || plan.warn != tc.warn || !strings.HasPrefix(plan.why, "RUN network: "):
			t.Errorf("%s: %+v, want %s (warn %v)", tc.what, plan, tc.kind, tc.warn)
		case plan.userNetwork() && plan.tool != "/usr/bin/"+tc.kind:
			t.Errorf("%s: tool %q", tc.what, plan.tool)
		}
	}
}

func TestResolvConfForPlans(t *testing.T) {
	machine := []byte("search example.com\nnameserver 127.0.0.53\nnameserver ::1\nnameserver 10.0.0.2\noptions edns0\n")
	pasta := netPlan{kind: netPasta}
	conf, forward := pasta.resolvConf(machine)
	if want := "search example.com\nnameserver 169.254.1.1\nnameserver 10.0.0.2\noptions edns0\n"; string(conf) != want || forward != dnsForwardAddr {
		t.Errorf("pasta: %q, forward %q; want %q", conf, forward, want)
	}
	conf, forward = pasta.resolvConf([]byte("nameserver 10.0.0.2\n"))
	if string(conf) != "nameserver 10.0.0.2\n" || forward != "" {
		t.Errorf("pasta, no loopback resolver: %q, forward %q", conf, forward)
	}
	conf, _ = netPlan{kind: netSlirp}.resolvConf(machine)
	if want := "search example.com\nnameserver 10.0.2.3\noptions edns0\n"; string(conf) != want {
		t.Errorf("slirp4netns: %q, want %q", conf, want)
	}
	conf, _ = netPlan{kind: netSlirp}.resolvConf(nil)
	if string(conf) != "nameserver 10.0.2.3\n" {
		t.Errorf("slirp4netns without a machine resolv.conf: %q", conf)
	}
	if conf, _ := (netPlan{kind: netShared}).resolvConf(machine); string(conf) != string(machine) {
		t.Errorf("shared: %q", conf)
	}
}
