package sandbox

import (
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
)

// testHelperEnv makes the test binary run one of the helper processes of
// the tests (see testHelpers) instead of the tests.
const testHelperEnv = "KILN_SANDBOX_TEST_HELPER"

// The variables of helper processes.
const (
	testDirEnv  = "KILN_SANDBOX_TEST_DIR"
	testLeakEnv = "KILN_SANDBOX_TEST_LEAK" // must never reach a RUN
)

var testHelpers = map[string]func(r *reporter){
	"in-place":    inPlaceHelper,
	"rootless":    rootlessHelper,
	"subid-setup": subIDSetupHelper,
	"propagation": propagationHelper,
}

func TestMain(m *testing.M) {
	// The sandbox's own helpers are re-executions of this test binary.
	Init()
	if name := os.Getenv(testHelperEnv); name != "" {
		r := &reporter{}
		testHelpers[name](r)
		if r.failed {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// checker is what the checks shared by the tests and the helper processes
// need: *testing.T, or a reporter.
type checker interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// reporter is a checker for helper processes: failures go to stderr, which
// the test shows.
type reporter struct{ failed bool }

func (r *reporter) Helper() {}

func (r *reporter) Errorf(format string, args ...any) {
	r.failed = true
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}

func (r *reporter) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	os.Exit(1)
}

// requireBusybox returns the statically linked busybox the test root
// filesystems are made of.
func requireBusybox(t *testing.T) string {
	t.Helper()
	const bb = "/bin/busybox"
	testutil.RequireFile(t, bb, "busybox-static")
	f, err := elf.Open(bb)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Skipf("needs a static %s (Debian package busybox-static), found a dynamically linked one", bb)
		}
	}
	return bb
}

// makeRootfs makes a root filesystem in dir with busybox and its applets in
// /bin and an empty /tmp, like a scratch image: no /proc, /dev, /sys or
// /etc.
func makeRootfs(c checker, busybox, dir string) {
	c.Helper()
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		c.Fatalf("%v", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		c.Fatalf("%v", err)
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		c.Fatalf("%v", err)
	}
	data, err := os.ReadFile(busybox)
	if err != nil {
		c.Fatalf("%v", err)
	}
	if err := os.WriteFile(filepath.Join(bin, "busybox"), data, 0o755); err != nil {
		c.Fatalf("%v", err)
	}
	list, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		c.Fatalf("busybox --list: %v", err)
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet == "busybox" {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(bin, applet)); err != nil {
			c.Fatalf("%v", err)
		}
	}
}

// newRootfs makes a root filesystem for one test.
func newRootfs(t *testing.T) string {
	t.Helper()
	bb := requireBusybox(t)
	dir := filepath.Join(t.TempDir(), "rootfs")
	makeRootfs(t, bb, dir)
	return dir
}

// shellSpec runs script with busybox's sh in rootfs as root.
func shellSpec(rootfs, script string) *Spec {
	return &Spec{
		Rootfs: rootfs,
		Args:   []string{"/bin/sh", "-c", script},
		Env:    []string{"PATH=/bin"},
	}
}

// run runs spec and returns its output.
func run(sb Sandbox, spec *Spec) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	spec.Stdout, spec.Stderr = &out, &errOut
	err = sb.Run(context.Background(), spec)
	return out.String(), errOut.String(), err
}

// mustRun runs spec, which must succeed, and returns its standard output.
func mustRun(c checker, sb Sandbox, spec *Spec) string {
	c.Helper()
	out, errOut, err := run(sb, spec)
	if err != nil {
		c.Fatalf("%q: %v\nstdout: %s\nstderr: %s", spec.Args, err, out, errOut)
	}
	return out
}

// processesWith lists the processes whose command line contains s.
func processesWith(c checker, s string) []string {
	c.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		c.Fatalf("%v", err)
	}
	var found []string
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		line := string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
		if strings.Contains(line, s) {
			found = append(found, e.Name()+": "+line)
		}
	}
	return found
}

// startedWriter reports on a channel when the first byte is written.
type startedWriter struct {
	started chan struct{}
	w       io.Writer
}

func (s *startedWriter) Write(p []byte) (int, error) {
	select {
	case <-s.started:
	default:
		close(s.started)
	}
	return s.w.Write(p)
}
