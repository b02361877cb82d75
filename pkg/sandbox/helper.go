package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// helperEnv marks a process that is one of the sandbox's re-executions of
// kiln; its value says which job the process does.
const helperEnv = "_KILN_SANDBOX_HELPER"

const (
	// helperRun sets up the root filesystem (chroot and rootless modes) and
	// supervises the command.
	helperRun = "run"
	// helperProbe tries what chroot isolation needs (see probeIsolation).
	helperProbe = "probe"
)

// The helper's file descriptors besides the standard streams.
const (
	configFD = 3 // helperConfig, JSON, read by the helper
	resultFD = 4 // helperResult, JSON, written by the helper
)

// helperWaitDelay bounds how long Run waits for an in-place helper that was
// asked to stop, and for the command's output once the helper exited.
const helperWaitDelay = 10 * time.Second

// Init must be called first thing in main. It makes the process not
// dumpable (protectProcess), before kiln reads any credential. When the
// process is a helper the sandbox started, Init does the helper's job and
// exits; when it is kiln re-executed in its user namespace
// (EnterUserNamespace), Init completes the entry and returns; otherwise it
// returns at once.
func Init() {
	// A process waiting for its ID maps stays dumpable until it has them:
	// initUserNamespace re-executes it then, and Init runs again.
	initUserNamespace()
	initMountNamespace()
	if err := protectProcess(); err != nil {
		fmt.Fprintf(os.Stderr, "kiln: %v\n", err)
		os.Exit(1)
	}
	switch job := os.Getenv(helperEnv); job {
	case "":
		return
	case helperRun:
		os.Exit(runHelper())
	case helperProbe:
		os.Exit(probeHelper())
	default:
		fmt.Fprintf(os.Stderr, "kiln: unknown sandbox helper job %q\n", job)
		os.Exit(2)
	}
}

// helperConfig is what the helper is asked to do.
type helperConfig struct {
	// Root is the root filesystem to set up and pivot into; nil in
	// in-place isolation.
	Root    *rootSetup `json:",omitempty"`
	Command command
}

// command is the command to run, and how.
type command struct {
	Args []string
	Env  []string
	Dir  string
	// SetCredential switches to UID, GID and Groups; without it the
	// command keeps the helper's identity.
	SetCredential bool
	UID, GID      uint32
	Groups        []uint32
	// NoSetGroups leaves the supplementary groups alone where setgroups(2)
	// is denied (a user namespace with a single mapping).
	NoSetGroups bool
	// LimitCapabilities limits the command to Capabilities and empties
	// its ambient and inheritable sets (see limitCapabilities).
	LimitCapabilities bool
	Capabilities      capSet
	// Seccomp is the command's seccomp filter, raw BPF (encodeBPF); none
	// when empty.
	Seccomp []byte `json:",omitempty"`
}

// helperResult is what became of the command.
type helperResult struct {
	Code   int    `json:",omitempty"`
	Signal string `json:",omitempty"`
	// Err is set when the command could not be run, or the processes it
	// left behind could not be ended.
	Err string `json:",omitempty"`
}

func (r *helperResult) err() error {
	switch {
	case r.Err != "":
		return errors.New(r.Err)
	case r.Code != 0 || r.Signal != "":
		return &ExitError{Code: r.Code, Signal: r.Signal}
	}
	return nil
}

// startHelper runs the helper with cfg and the standard streams of spec,
// and returns what became of the command. attr sets the helper's
// namespaces; stop is the signal that asks it to end the command when ctx
// is done. prepare, if not nil, is called with the helper's pid before the
// helper gets cfg (and so before anything runs in its namespaces); the
// function it returns is called once the helper has exited.
func startHelper(ctx context.Context, cfg *helperConfig, spec *Spec, attr *syscall.SysProcAttr, stop os.Signal,
	prepare func(pid int) (func(), error)) error {
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer cfgW.Close()
	resR, resW, err := os.Pipe()
	if err != nil {
		cfgR.Close()
		return err
	}
	defer resR.Close()

	cmd := exec.CommandContext(ctx, "/proc/self/exe")
	cmd.Args = []string{"kiln-sandbox"}
	cmd.Env = []string{helperEnv + "=" + helperRun}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = spec.Stdin, spec.Stdout, spec.Stderr
	cmd.ExtraFiles = []*os.File{cfgR, resW} // configFD, resultFD
	cmd.SysProcAttr = attr
	cmd.Cancel = func() error { return cmd.Process.Signal(stop) }
	cmd.WaitDelay = helperWaitDelay
	err = cmd.Start()
	cfgR.Close()
	resW.Close()
	if err != nil {
		return fmt.Errorf("starting the sandbox helper: %w", err)
	}
	if prepare != nil {
		cleanup, err := prepare(cmd.Process.Pid)
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return err
		}
		defer cleanup()
	}

	// A write error means the helper died; Wait says why.
	encErr := json.NewEncoder(cfgW).Encode(cfg)
	cfgW.Close()
	out, readErr := io.ReadAll(resR)
	waitErr := cmd.Wait()
	if ctx.Err() != nil {
		return fmt.Errorf("command stopped: %w", ctx.Err())
	}
	var res helperResult
	if err := json.Unmarshal(out, &res); err != nil {
		if why := errors.Join(waitErr, encErr, readErr); why != nil {
			err = why
		}
		return fmt.Errorf("sandbox helper ended without a result: %w", err)
	}
	return res.err()
}

// runHelper is the helper's main function.
func runHelper() int {
	// Asked to stop (or interrupted along with kiln): end the command.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, unix.SIGINT, unix.SIGTERM, unix.SIGHUP)

	cfgFile := os.NewFile(configFD, "config")
	resFile := os.NewFile(resultFD, "result")
	// The command must inherit neither.
	unix.CloseOnExec(configFD)
	unix.CloseOnExec(resultFD)

	var res helperResult
	var cfg helperConfig
	if err := json.NewDecoder(cfgFile).Decode(&cfg); err != nil {
		res.Err = fmt.Sprintf("sandbox helper: reading its configuration: %v", err)
	} else {
		res = cfg.run(stop)
	}
	cfgFile.Close()
	if err := json.NewEncoder(resFile).Encode(res); err != nil {
		return 1
	}
	return 0
}

func (cfg *helperConfig) run(stop <-chan os.Signal) helperResult {
	// Orphans of the command reparent to the helper, which ends them. In
	// a new PID namespace the helper is PID 1 and reaps them anyway.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return helperResult{Err: fmt.Sprintf("becoming a child subreaper: %v", err)}
	}
	if cfg.Root != nil {
		if err := cfg.Root.setup(); err != nil {
			return helperResult{Err: err.Error()}
		}
	}
	return supervise(&cfg.Command, stop)
}
