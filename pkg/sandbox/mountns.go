package sandbox

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// mountNSEnv marks kiln re-executed by EnterMountNamespace.
const mountNSEnv = "_KILN_MOUNTNS"

// inMountNamespace is set in kiln re-executed by EnterMountNamespace.
var inMountNamespace bool

// PrivateMounts reports whether kiln runs in a mount namespace of its own
// (EnterMountNamespace, or the user namespace of rootless isolation), where
// what it mounts is seen by nobody else and goes away with it.
func PrivateMounts() bool { return inMountNamespace || inUserNamespace }

// EnterMountNamespace re-executes kiln, as root, in a mount namespace of
// its own whose mounts propagate nowhere, so that it may mount the root
// filesystems of RUN (overlays of extracted layers) without leaving a
// mount behind, however it ends. It returns only in the new process; the
// old one waits for it and exits with its status.
func EnterMountNamespace() error {
	if PrivateMounts() {
		return nil
	}
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), mountNSEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT)
	if err := cmd.Start(); err != nil {
		signal.Stop(signals)
		return fmt.Errorf("re-executing kiln in a mount namespace: %w", err)
	}
	exitWithChild(cmd, signals)
	return nil
}

// initMountNamespace is Init's part for kiln re-executed by
// EnterMountNamespace: its mounts become private before anything is
// mounted.
func initMountNamespace() {
	if os.Getenv(mountNSEnv) == "" {
		return
	}
	os.Unsetenv(mountNSEnv)
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		fmt.Fprintf(os.Stderr, "kiln: making kiln's mounts private: %v\n", err)
		os.Exit(1)
	}
	inMountNamespace = true
}
