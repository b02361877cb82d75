package sandbox

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
	"golang.org/x/sys/unix"
)

// TestInPlace runs in-place isolation in a helper process whose "/" is a
// scratch root filesystem (new mount and PID namespaces, pivot_root), so
// that the RUNs change nothing of the machine, and that what they write in
// "/" can be looked for in the scratch directory.
func TestInPlace(t *testing.T) {
	testutil.RequireRoot(t, "the test runs in-place isolation in a scratch root of its own mount namespace")
	bb := requireBusybox(t)
	scratch := filepath.Join(t.TempDir(), "root")
	makeRootfs(t, bb, scratch)
	marker := "kiln-in-place-" + randomHex(t)

	cmd := exec.Command("/proc/self/exe")
	cmd.Env = []string{
		testHelperEnv + "=in-place",
		testDirEnv + "=" + scratch,
		testLeakEnv + "=registry password",
		"KILN_SANDBOX_TEST_MARKER=" + marker,
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNS | unix.CLONE_NEWPID, Pdeathsig: syscall.SIGKILL}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("in-place helper: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(scratch, marker)); err != nil || string(b) != "written in place\n" {
		t.Errorf("the RUN's file in the scratch root: %q, %v", b, err)
	}
	if _, err := os.Lstat("/" + marker); err == nil {
		os.Remove("/" + marker)
		t.Errorf("the RUN wrote /%s on the machine", marker)
	}
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// inPlaceHelper pivots into the scratch root and runs the checks there.
func inPlaceHelper(r *reporter) {
	enterScratchRoot(r, os.Getenv(testDirEnv))
	sb, err := New(ModeInPlace, WithWorkDir("/tmp"))
	if err != nil {
		r.Fatalf("%v", err)
	}
	checkExitCodes(r, sb, "/")
	checkOutput(r, sb, "/")
	checkEnvironment(r, sb, "/")
	checkIdentity(r, sb, "/", 1000, 1000, []uint32{10, 20}, "uid=1000 gid=1000 groups=10,20")
	checkWorkDir(r, sb, "/")
	checkMissingCommand(r, sb, "/")
	checkBackgroundKilled(r, sb, "/")
	checkCancel(r, sb, "/")

	mustRun(r, sb, shellSpec("/", "echo written in place >/"+os.Getenv("KILN_SANDBOX_TEST_MARKER")))
	checkInPlaceCannotReadProcesses(r, sb)
	checkInPlaceCapabilities(r, sb)
	checkOwnFilesPutBack(r)

	for name, spec := range map[string]*Spec{
		"network none": {Rootfs: "/", Args: []string{"true"}, Network: NetworkNone},
		"mount":        {Rootfs: "/", Args: []string{"true"}, Mounts: []Mount{{Type: MountTmpfs, Target: "/x"}}},
		"other root":   {Rootfs: "/tmp", Args: []string{"true"}},
	} {
		if _, _, err := run(sb, spec); err == nil {
			r.Errorf("%s: ran, want an error", name)
		}
	}
}

// enterScratchRoot makes root the root of a private mount namespace, with
// /proc, the machine's /dev and, read-only, the machine's libraries: the
// test binary may be linked dynamically, and the sandbox re-executes it.
func enterScratchRoot(r *reporter, root string) {
	type step struct {
		what string
		do   func() error
	}
	steps := []step{
		{"private mounts", func() error { return unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "") }},
		{"bind root", func() error { return unix.Mount(root, root, "", unix.MS_BIND|unix.MS_REC, "") }},
		{"mkdir proc", func() error { return os.Mkdir(filepath.Join(root, "proc"), 0o755) }},
		{"mount proc", func() error { return unix.Mount("proc", filepath.Join(root, "proc"), "proc", 0, "") }},
		{"mkdir dev", func() error { return os.Mkdir(filepath.Join(root, "dev"), 0o755) }},
		{"bind dev", func() error {
			return unix.Mount("/dev", filepath.Join(root, "dev"), "", unix.MS_BIND|unix.MS_REC, "")
		}},
	}
	for _, lib := range []string{"/lib", "/lib64", "/usr"} {
		st, err := os.Lstat(lib)
		if err != nil {
			continue
		}
		p := filepath.Join(root, lib)
		if st.Mode()&os.ModeSymlink != 0 {
			target, err := os.Readlink(lib)
			steps = append(steps, step{"link " + lib, func() error { return errors.Join(err, os.Symlink(target, p)) }})
		} else {
			steps = append(steps, step{"bind " + lib, func() error { return errors.Join(os.Mkdir(p, 0o755), bindMount(lib, p, true)) }})
		}
	}
	steps = append(steps, step{"pivot_root", func() error { return pivotRoot(root) }})
	for _, s := range steps {
		if err := s.do(); err != nil {
			r.Fatalf("entering the scratch root %q: %s: %v", root, s.what, err)
		}
	}
}

// checkInPlaceCannotReadProcesses runs a RUN that looks for a secret in the
// environment of every process it can see: kiln (this process, which is
// not dumpable) and a sibling standing for the CI job's shell, which holds
// the secret too and has every capability a root process has. The RUN can
// read its own environment, but no other's.
func checkInPlaceCannotReadProcesses(r *reporter, sb Sandbox) {
	r.Helper()
	secret := os.Getenv(testLeakEnv)
	sibling := exec.Command("/bin/sleep", "60")
	sibling.Env = []string{testLeakEnv + "=" + secret}
	if err := sibling.Start(); err != nil {
		r.Fatalf("starting the sibling process: %v", err)
	}
	defer func() { sibling.Process.Kill(); sibling.Wait() }()
	// Listing /proc/PID/fd takes only CAP_DAC_OVERRIDE; following an
	// entry there, like root, cwd and mem, takes what ptrace takes.
	script := fmt.Sprintf(`found=0
for p in /proc/[0-9]*; do
	if tr '\0' '\n' <$p/environ 2>/dev/null | grep -q %[1]q; then echo "read the secret in $p/environ: $(tr '\0' ' ' <$p/cmdline)"; found=1; fi
done
tr '\0' '\n' </proc/self/environ >/tmp/own-env
grep -q '^OWN=visible$' /tmp/own-env || { echo "cannot read its own environment"; found=1; }
rm -f /tmp/own-env
for p in /proc/%[2]d /proc/%[3]d; do
	for fd in $p/fd/*; do readlink $fd >/dev/null 2>&1 && { echo "followed $fd"; found=1; }; done
	head -c 1 $p/mem >/dev/null 2>&1 && { echo "read $p/mem"; found=1; }
	ls $p/root/ >/dev/null 2>&1 && { echo "listed $p/root"; found=1; }
	ls $p/cwd/ >/dev/null 2>&1 && { echo "listed $p/cwd"; found=1; }
done
exit $found`, secret, os.Getpid(), sibling.Process.Pid)
	spec := shellSpec("/", script)
	spec.Env = append(spec.Env, "OWN=visible")
	if out, errOut, err := run(sb, spec); err != nil {
		r.Errorf("a RUN read other processes: %v\n%s%s", err, out, errOut)
	}
}

// checkInPlaceCapabilities checks that a RUN as root gets a RUN's
// capabilities only, whatever kiln has.
func checkInPlaceCapabilities(r *reporter, sb Sandbox) {
	r.Helper()
	got := mustRun(r, sb, shellSpec("/", "grep -E '^Cap(Inh|Eff|Bnd|Amb)' /proc/self/status"))
	want := fmt.Sprintf("CapInh:\t0000000000000000\nCapEff:\t%016x\nCapBnd:\t%016x\nCapAmb:\t0000000000000000\n", uint64(runCapabilities), uint64(runCapabilities))
	if got != want {
		r.Errorf("capabilities of an in-place RUN:\n%s\nwant:\n%s", got, want)
	}
}

// checkOwnFilesPutBack lays out kiln's own files as the executor images do,
// lets a RUN tamper with them, and checks that the RUN fails and the files
// are back.
func checkOwnFilesPutBack(r *reporter) {
	r.Helper()
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		r.Fatalf("%v", err)
	}
	files := map[string]string{
		"/kiln/executor":             string(self),
		"/kiln/ssl/certs/ca.pem":     "trusted CA\n",
		"/busybox/busybox":           "a shell\n",
		"/kiln/.docker/config.json":  `{"auths":{}}`,
		"/kiln/cache/not-kilns-file": "RUN --mount cache, not guarded\n",
	}
	for p, content := range files {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.Fatalf("%v", err)
		}
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			r.Fatalf("%v", err)
		}
	}
	for link, target := range map[string]string{"/kiln/kiln": "executor", "/busybox/sh": "busybox"} {
		if err := os.Symlink(target, link); err != nil {
			r.Fatalf("%v", err)
		}
	}
	sb, err := New(ModeInPlace, WithWorkDir("/tmp"))
	if err != nil {
		r.Fatalf("%v", err)
	}
	mustRun(r, sb, shellSpec("/", "cat /kiln/ssl/certs/ca.pem /kiln/cache/not-kilns-file >/dev/null && echo changed > /kiln/cache/not-kilns-file"))

	tamper := `set -e
rm /kiln/executor && echo '#!/bin/sh' > /kiln/executor && chmod 755 /kiln/executor
echo 'attacker CA' >> /kiln/ssl/certs/ca.pem
echo 'attacker CA' > /kiln/ssl/certs/evil.pem
ln -sf /tmp/evil /busybox/sh
rm /kiln/kiln && mkdir /kiln/kiln
echo '{"credsStore":"evil"}' > /kiln/.docker/config.json`
	_, _, err = run(sb, shellSpec("/", tamper))
	for _, want := range []string{"changed kiln's own files, which kiln has put back", `"/kiln/executor"`, `"/kiln/ssl/certs/evil.pem"`,
		`"/kiln/ssl/certs/ca.pem"`, `"/busybox/sh"`, `"/kiln/kiln"`, `"/kiln/.docker/config.json"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			r.Errorf("a RUN that tampered with kiln's files: %v; want an error with %s", err, want)
		}
	}
	files["/kiln/cache/not-kilns-file"] = "changed\n"
	for p, content := range files {
		if b, err := os.ReadFile(p); err != nil || string(b) != content {
			r.Errorf("%s after the RUN: %.40q, %v; want it put back", p, b, err)
		}
	}
	for link, target := range map[string]string{"/kiln/kiln": "executor", "/busybox/sh": "busybox"} {
		if got, err := os.Readlink(link); err != nil || got != target {
			r.Errorf("%s after the RUN: %q, %v; want a link to %s", link, got, err, target)
		}
	}
	if _, err := os.Lstat("/kiln/ssl/certs/evil.pem"); err == nil {
		r.Errorf("the file a RUN added to /kiln/ssl/certs is still there")
	}
	// Untouched now: the next RUN is fine.
	mustRun(r, sb, shellSpec("/", "true"))
}
