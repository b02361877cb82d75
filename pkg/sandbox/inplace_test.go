package sandbox

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
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
