package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary doubles as the measured program: with BENCHTOOL_HELPER
// set, its arguments say what to do.
func TestMain(m *testing.M) {
	if os.Getenv("BENCHTOOL_HELPER") != "" {
		if parent := os.Getenv("BENCHTOOL_OUTLIVE_PARENT"); parent != "" {
			// An orphan to be: start working once re-parented.
			for strconv.Itoa(os.Getppid()) == parent {
				time.Sleep(time.Millisecond)
			}
		}
		if err := helper(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func needProcChildren(t *testing.T) {
	t.Helper()
	if err := checkProcChildren(); err != nil {
		t.Skip("measure cannot run here:", err)
	}
}

// helper runs one action:
//
//	burn DURATION        spin until this process used DURATION of CPU
//	hold MB              touch MB of memory, say "ready", keep it until stdin closes
//	orphan ACTION...     start ACTION in a child and exit; the child starts it once orphaned
//	holdpair MB DURATION two children hold MB each; once both are ready, wait DURATION, release them
//	touch FILE           create FILE
func helper(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("no action")
	}
	switch args[0] {
	case "burn":
		d, err := time.ParseDuration(args[1])
		if err != nil {
			return err
		}
		for {
			var ts unix.Timespec
			if err := unix.ClockGettime(unix.CLOCK_PROCESS_CPUTIME_ID, &ts); err != nil {
				return err
			}
			if time.Duration(ts.Nano()) >= d {
				return nil
			}
		}
	case "hold":
		mb, err := strconv.Atoi(args[1])
		if err != nil {
			return err
		}
		b := make([]byte, mb<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		_ = b[len(b)-1]
		return nil
	case "orphan":
		c := helperCmd(args[1:]...)
		c.Env = append(c.Env, "BENCHTOOL_OUTLIVE_PARENT="+strconv.Itoa(os.Getpid()))
		return c.Start()
	case "holdpair":
		d, err := time.ParseDuration(args[2])
		if err != nil {
			return err
		}
		var stdins []io.Closer
		var cmds []*exec.Cmd
		for range 2 {
			c := helperCmd("hold", args[1])
			in, err := c.StdinPipe()
			if err != nil {
				return err
			}
			out, err := c.StdoutPipe()
			if err != nil {
				return err
			}
			if err := c.Start(); err != nil {
				return err
			}
			if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
				return fmt.Errorf("holder said %q: %v", line, err)
			}
			stdins, cmds = append(stdins, in), append(cmds, c)
		}
		time.Sleep(d) // both hold their memory now
		for _, in := range stdins {
			in.Close()
		}
		return cmpErr(cmds[0].Wait(), cmds[1].Wait())
	case "touch":
		return os.WriteFile(args[1], nil, 0o644)
	}
	return fmt.Errorf("unknown action %q", args[0])
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func helperCmd(args ...string) *exec.Cmd {
	c := exec.Command(os.Args[0], args...)
	c.Env = append(os.Environ(), "BENCHTOOL_HELPER=1")
	c.Stderr = os.Stderr
	return c
}

// helperArgv is a measured command running the test binary as helper.
func helperArgv(args ...string) []string {
	return append([]string{"env", "BENCHTOOL_HELPER=1", os.Args[0]}, args...)
}

func TestMeasureCountsOrphansCPU(t *testing.T) {
	needProcChildren(t)
	// The measured command exits at once; its child, re-parented to the
	// measuring process, burns 300ms of CPU afterwards: that CPU is counted.
	u, err := measure([][]string{helperArgv("orphan", "burn", "300ms")}, nil, 10*time.Millisecond, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if u.ExitCode != 0 {
		t.Fatalf("exit code %d", u.ExitCode)
	}
	if cpu := u.User + u.Sys; cpu < 300*time.Millisecond {
		t.Errorf("cpu %v, want at least the orphan's 300ms", cpu)
	}
	if u.Leftovers != 1 {
		t.Errorf("leftovers %d, want 1 (the orphan outlived the command)", u.Leftovers)
	}
}

func TestMeasurePeakRSSOfTree(t *testing.T) {
	needProcChildren(t)
	// Two children hold 64 MB each at the same time: the tree's peak is at
	// least their sum, the largest process at least one of them.
	u, err := measure([][]string{helperArgv("holdpair", "64", "500ms")}, nil, 10*time.Millisecond, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	const mb = 1 << 20
	if u.MaxProcRSS < 64*mb || u.MaxProcRSS > 100*mb {
		t.Errorf("largest process %d MB, want 64 to 100", u.MaxProcRSS/mb)
	}
	if u.PeakTreeRSS < 128*mb {
		t.Errorf("tree peak %d MB, want at least 128 (2 x 64)", u.PeakTreeRSS/mb)
	}
	if u.MaxProcs < 3 {
		t.Errorf("saw at most %d processes at once, want 3 (env's exec, 2 children)", u.MaxProcs)
	}
}

func TestMeasureStopsAtFirstFailure(t *testing.T) {
	needProcChildren(t)
	marker := filepath.Join(t.TempDir(), "ran")
	var out bytes.Buffer
	cmds := splitCommands([]string{"sh", "-c", "echo first; exit 7", ":::", os.Args[0], "touch", marker})
	u, err := measure(cmds, &out, 10*time.Millisecond, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if u.ExitCode != 7 {
		t.Errorf("exit code %d, want 7", u.ExitCode)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Errorf("the second command ran after the first failed (stat: %v)", err)
	}
	if out.String() != "first\n" {
		t.Errorf("output %q, want %q", out.String(), "first\n")
	}
}

func TestMeasureRunsCommandsInOrder(t *testing.T) {
	needProcChildren(t)
	dir := t.TempDir()
	cmds := splitCommands([]string{"sh", "-c", "echo 1 > " + dir + "/log", ":::", "sh", "-c", "echo 2 >> " + dir + "/log"})
	if len(cmds) != 2 {
		t.Fatalf("split into %d commands, want 2", len(cmds))
	}
	u, err := measure(cmds, nil, 10*time.Millisecond, time.Minute)
	if err != nil || u.ExitCode != 0 {
		t.Fatalf("err %v, exit %d", err, u.ExitCode)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "log"))
	if string(b) != "1\n2\n" {
		t.Errorf("log %q, want both commands in order", b)
	}
}

func TestMeasureTimeout(t *testing.T) {
	needProcChildren(t)
	u, err := measure([][]string{{"sleep", "30"}}, nil, 10*time.Millisecond, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if !u.TimedOut || u.ExitCode != 128+int(unix.SIGKILL) {
		t.Errorf("timed out %v, exit code %d; want a kill after 200ms", u.TimedOut, u.ExitCode)
	}
	if u.Wall > 10*time.Second {
		t.Errorf("wall %v: the timeout did not end the command", u.Wall)
	}
}
