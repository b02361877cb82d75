package sandbox

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// The checks below are what every isolation mode must do; the tests of
// chroot isolation and the helper processes of the in-place and rootless
// tests run them.

func checkExitCodes(c checker, sb Sandbox, rootfs string) {
	c.Helper()
	for _, tc := range []struct {
		script string
		want   *ExitError
	}{
		{"exit 0", nil},
		{"exit 42", &ExitError{Code: 42}},
		{"kill -KILL $$", &ExitError{Code: 137, Signal: "SIGKILL"}},
	} {
		_, _, err := run(sb, shellSpec(rootfs, tc.script))
		var got *ExitError
		switch {
		case tc.want == nil && err != nil:
			c.Errorf("%s: %v, want success", tc.script, err)
		case tc.want != nil && !errors.As(err, &got):
			c.Errorf("%s: %v, want an *ExitError", tc.script, err)
		case tc.want != nil && *got != *tc.want:
			c.Errorf("%s: %+v, want %+v", tc.script, *got, *tc.want)
		}
	}
}

func checkOutput(c checker, sb Sandbox, rootfs string) {
	c.Helper()
	out, errOut, err := run(sb, shellSpec(rootfs, "echo to-stdout; echo to-stderr >&2"))
	if err != nil || out != "to-stdout\n" || errOut != "to-stderr\n" {
		c.Errorf("stdout %q, stderr %q, error %v; want \"to-stdout\\n\", \"to-stderr\\n\", nil", out, errOut, err)
	}
}

// checkEnvironment needs testLeakEnv set in the calling process.
func checkEnvironment(c checker, sb Sandbox, rootfs string) {
	c.Helper()
	if os.Getenv(testLeakEnv) == "" {
		c.Fatalf("%s is not set in the test process", testLeakEnv)
	}
	env := []string{"PATH=/bin", "A=1", "B=two words"}
	spec := &Spec{Rootfs: rootfs, Args: []string{"env"}, Env: env}
	got := strings.Split(strings.TrimSuffix(mustRun(c, sb, spec), "\n"), "\n")
	slices.Sort(got)
	want := slices.Sorted(slices.Values(env))
	if !slices.Equal(got, want) {
		c.Errorf("the command's environment is %q, want exactly %q", got, want)
	}
}

func checkIdentity(c checker, sb Sandbox, rootfs string, uid, gid uint32, groups []uint32, want string) {
	c.Helper()
	spec := &Spec{Rootfs: rootfs, Args: []string{"id"}, Env: []string{"PATH=/bin"}, UID: uid, GID: gid, Groups: groups}
	if got := mustRun(c, sb, spec); got != want+"\n" {
		c.Errorf("id as %d:%d %v printed %q, want %q", uid, gid, groups, got, want)
	}
}

func checkWorkDir(c checker, sb Sandbox, rootfs string) {
	c.Helper()
	if err := os.MkdirAll(filepath.Join(rootfs, "work/dir"), 0o755); err != nil {
		c.Fatalf("%v", err)
	}
	spec := &Spec{Rootfs: rootfs, Args: []string{"pwd"}, Env: []string{"PATH=/bin"}, Dir: "/work/dir"}
	if got := mustRun(c, sb, spec); got != "/work/dir\n" {
		c.Errorf("pwd printed %q, want /work/dir", got)
	}
}

func checkMissingCommand(c checker, sb Sandbox, rootfs string) {
	c.Helper()
	spec := &Spec{Rootfs: rootfs, Args: []string{"no-such-command"}, Env: []string{"PATH=/bin"}}
	_, _, err := run(sb, spec)
	if err == nil || !strings.Contains(err.Error(), `"no-such-command": executable file not found`) {
		c.Errorf("running a missing command: %v, want an error saying it was not found", err)
	}
}

// uniqueSleep is a sleep duration that no other process on the machine is
// likely to use, to find the sleep processes of one check.
func uniqueSleep() string {
	return strconv.Itoa(900000 + rand.IntN(99999))
}

// checkBackgroundKilled runs a command that leaves processes behind, one
// in its process group and one in a session of its own.
func checkBackgroundKilled(c checker, sb Sandbox, rootfs string) {
	c.Helper()
	tag := uniqueSleep()
	mustRun(c, sb, shellSpec(rootfs, "sleep "+tag+" & setsid sleep "+tag+" & exit 0"))
	if left := processesWith(c, "sleep "+tag); len(left) > 0 {
		c.Errorf("processes left behind by the command: %q", left)
	}
}

// checkCancel stops a command through its context once it runs.
func checkCancel(c checker, sb Sandbox, rootfs string) {
	c.Helper()
	tag := uniqueSleep()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := &startedWriter{started: make(chan struct{}), w: &bytes.Buffer{}}
	spec := shellSpec(rootfs, "setsid sleep "+tag+" & echo started; exec sleep "+tag)
	spec.Stdout = started
	done := make(chan error, 1)
	go func() { done <- sb.Run(ctx, spec) }()
	select {
	case <-started.started:
		cancel()
	case err := <-done:
		c.Fatalf("the command ended before it was stopped: %v", err)
	}
	if err := <-done; !errors.Is(err, context.Canceled) {
		c.Errorf("stopped command: %v, want context.Canceled", err)
	}
	if left := processesWith(c, "sleep "+tag); len(left) > 0 {
		c.Errorf("processes left behind by the stopped command: %q", left)
	}
}

// checkSystemMounts checks /proc, /dev, /sys and the generated /etc files
// from inside, by the command's mountinfo and by using them.
func checkSystemMounts(c checker, sb Sandbox, rootfs string) {
	c.Helper()
	out := mustRun(c, sb, &Spec{Rootfs: rootfs, Args: []string{"cat", "/proc/self/mountinfo"}, Env: []string{"PATH=/bin"}})
	mounts, err := ParseMountinfo(strings.NewReader(out))
	if err != nil {
		c.Fatalf("%v", err)
	}
	points := map[string]MountInfo{}
	for _, m := range mounts {
		points[m.MountPoint] = m // the last one is on top
	}
	for point, fstype := range map[string]string{
		"/proc": "proc", "/dev": "tmpfs", "/dev/pts": "devpts", "/dev/shm": "tmpfs", "/sys": "sysfs",
	} {
		if m, ok := points[point]; !ok || m.FSType != fstype {
			c.Errorf("%s: mounted %v (%q), want %s", point, ok, m.FSType, fstype)
		}
	}
	for _, point := range []string{"/sys", "/proc/sys", "/proc/sysrq-trigger"} {
		if _, err := os.Stat(point); err != nil {
			continue // not in this kernel
		}
		if m := points[point]; !strings.HasPrefix(m.Options+",", "ro,") {
			c.Errorf("%s: mount options %q, want read-only", point, m.Options)
		}
	}
	for _, point := range []string{etcHosts, etcResolv, etcHostname} {
		if _, ok := points[point]; !ok {
			c.Errorf("%s is not mounted", point)
		}
	}
	// The values written back are the current ones: nothing changes even
	// if the check fails.
	script := `set -e
read -r pid rest </proc/self/stat
[ "$pid" = "$$" ] || { echo "/proc is not the command's PID namespace's"; exit 1; }
echo discarded >/dev/null
[ "$(head -c 16 /dev/urandom | wc -c)" -eq 16 ]
[ "$(head -c 4 /dev/zero | od -An -tx1 | tr -d ' \n')" = 00000000 ]
exec 3<>/dev/ptmx
[ -c /dev/pts/0 ] || { echo "no terminal from /dev/ptmx"; exit 1; }
echo shared >/dev/shm/f
[ "$(cat /dev/shm/f)" = shared ]
[ "$(readlink /dev/stdin)" = /proc/self/fd/0 ] && [ "$(readlink /dev/fd)" = /proc/self/fd ]
v=$(cat /proc/sys/vm/overcommit_memory)
if (echo "$v" >/proc/sys/vm/overcommit_memory) 2>/dev/null; then echo "/proc/sys is writable"; exit 1; fi
`
	mustRun(c, sb, shellSpec(rootfs, script))
}

func checkNetworkNone(c checker, sb Sandbox, rootfs string) {
	c.Helper()
	spec := shellSpec(rootfs, "ls /sys/class/net; cat /sys/class/net/lo/flags")
	spec.Network = NetworkNone
	if got := mustRun(c, sb, spec); got != "lo\n0x9\n" {
		c.Errorf("network none: interfaces and flags of lo %q, want only lo, up (0x9)", got)
	}
}

// checkNetworkDefault checks the network of a RUN with the default
// network: the machine's interfaces when the plan shares kiln's network,
// otherwise a namespace of its own with loopback and the interface that
// pasta or slirp4netns configured, with a default route.
func checkNetworkDefault(c checker, sb Sandbox, rootfs string) {
	c.Helper()
	plan := sb.(*namespaced).net
	got := mustRun(c, sb, shellSpec(rootfs, "ls /sys/class/net"))
	if !plan.userNetwork() {
		if want := machineInterfaces(c); got != want {
			c.Errorf("default network (%s): interfaces %q, want the machine's %q", plan.kind, got, want)
		}
		return
	}
	ifaces := strings.Fields(got)
	if len(ifaces) != 2 || !slices.Contains(ifaces, "lo") {
		c.Fatalf("default network (%s): interfaces %q, want lo and the one %s configured", plan.kind, ifaces, plan.kind)
	}
	// A default route: destination 00000000 in /proc/net/route.
	route := mustRun(c, sb, shellSpec(rootfs, "awk 'NR > 1 && $2 == \"00000000\" { print $1 }' /proc/net/route"))
	if strings.TrimSpace(route) == "" || strings.TrimSpace(route) == "lo" {
		c.Errorf("default network (%s): default route through %q", plan.kind, route)
	}
}

// machineInterfaces lists the machine's network interfaces, one a line.
func machineInterfaces(c checker) string {
	c.Helper()
	entries, err := os.ReadDir("/sys/class/net")
	if err != nil {
		c.Fatalf("%v", err)
	}
	var want strings.Builder
	for _, e := range entries {
		want.WriteString(e.Name() + "\n")
	}
	return want.String()
}

// checkScratchRootfsUnchanged checks that a root filesystem made by
// makeRootfs, which lacked every mount point, got none left behind.
func checkScratchRootfsUnchanged(c checker, rootfs string, extra ...string) {
	c.Helper()
	entries, err := os.ReadDir(rootfs)
	if err != nil {
		c.Fatalf("%v", err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	want := slices.Sorted(slices.Values(append([]string{"bin", "tmp"}, extra...)))
	if !slices.Equal(got, want) {
		c.Errorf("root filesystem entries after the RUNs: %q, want %q", got, want)
	}
}
