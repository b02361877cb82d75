package sandbox

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// protectProcess makes kiln's process not dumpable. Linux then lets only
// processes with CAP_SYS_PTRACE, which a RUN never has, read its memory,
// environment and file descriptors through /proc/PID (environ, mem, fd,
// maps, cwd, root), attach to it with ptrace, or get a core dump of it:
// kiln holds registry credentials, and in in-place isolation a RUN runs as
// root in kiln's PID namespace. /proc/PID/cmdline, stat and status stay
// readable, as for every process.
//
// kiln keeps full access to its own /proc/self. Exec resets the flag, so a
// re-executed kiln (the sandbox's helper, kiln in its user namespace) sets
// it again in Init; the one moment a process must stay dumpable is while
// newuidmap writes its ID maps (see initUserNamespace and
// EnterUserNamespace).
func protectProcess() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("making kiln's process not dumpable: %w", err)
	}
	return nil
}

// whileDumpable runs f with the process dumpable, for a child whose ID maps
// its unprivileged parent writes: a new process shares the parent's flag
// until it executes, and the /proc files of a process that is not dumpable
// belong to root.
func whileDumpable(f func() error) error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("making kiln's process dumpable: %w", err)
	}
	err := f()
	if perr := protectProcess(); perr != nil {
		fmt.Fprintf(os.Stderr, "kiln: %v\n", perr)
		os.Exit(1)
	}
	return err
}

// dumpable reports whether the process is dumpable.
func dumpable() (bool, error) {
	v, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	return v == 1, err
}
