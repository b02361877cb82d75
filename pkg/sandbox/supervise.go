package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// supervise runs the command, reaping every orphan that reparents to the
// helper meanwhile, and once the command has exited ends and reaps every
// process it left behind. A signal on stop kills the command first.
func supervise(c *command, stop <-chan os.Signal) helperResult {
	exe, err := lookPath(c.Args[0], c.Env)
	if err != nil {
		return helperResult{Err: err.Error()}
	}
	env := c.Env
	if env == nil {
		env = []string{} // nil would pass on the helper's own environment
	}
	sys := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if c.SetCredential {
		sys.Credential = &syscall.Credential{Uid: c.UID, Gid: c.GID, Groups: c.Groups, NoSetGroups: c.NoSetGroups}
	}
	dir := c.Dir
	if dir == "" {
		dir = "/"
	}
	// Docker's umask, rather than whatever kiln was started with.
	unix.Umask(0o022)

	// Capability sets and seccomp filters belong to a thread, and the
	// command inherits those of the thread that forks it. The main
	// goroutine stays locked to this thread until the helper exits.
	runtime.LockOSThread()
	if c.LimitCapabilities {
		root := os.Geteuid() == 0
		if c.SetCredential {
			root = c.UID == 0
		}
		if err := limitCapabilities(c.Capabilities, root); err != nil {
			return helperResult{Err: err.Error()}
		}
	}
	// Last: from here on this thread is filtered too. What the helper
	// still does (fork, exec, wait, kill, read /proc) Docker's profile
	// allows.
	if len(c.Seccomp) > 0 {
		if err := installSeccomp(c.Seccomp); err != nil {
			return helperResult{Err: err.Error()}
		}
	}
	proc, err := os.StartProcess(exe, c.Args, &os.ProcAttr{
		Dir:   dir,
		Env:   env,
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
		Sys:   sys,
	})
	if err != nil {
		return helperResult{Err: fmt.Sprintf("starting %q: %v", c.Args[0], err)}
	}
	go func() {
		// os.Process signals through a pidfd: never a recycled pid.
		for range stop {
			proc.Kill()
		}
	}()

	status, waitErr := reap(proc.Pid)
	killErr := killDescendants()
	switch {
	case waitErr != nil:
		return helperResult{Err: fmt.Sprintf("waiting for %q: %v", c.Args[0], waitErr)}
	case killErr != nil:
		return helperResult{Err: fmt.Sprintf("ending the processes %q left behind: %v", c.Args[0], killErr)}
	case status.Signaled():
		return helperResult{Code: 128 + int(status.Signal()), Signal: unix.SignalName(status.Signal())}
	}
	return helperResult{Code: status.ExitStatus()}
}

// reap reaps children until pid exits, and returns its status.
func reap(pid int) (unix.WaitStatus, error) {
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, 0, nil)
		switch {
		case errors.Is(err, unix.EINTR):
		case err != nil:
			return 0, err
		case got == pid:
			return ws, nil
		}
	}
}

// killDescendants kills and reaps every remaining descendant of the helper.
// Being a subreaper, the helper inherits the children of each descendant
// that dies, before that one can be reaped: so every round kills the
// current children, waits for one to go, and looks again, until there are
// none.
func killDescendants() error {
	self := os.Getpid()
	for {
		children, err := childProcesses(self)
		if err != nil {
			return err
		}
		for _, pid := range children {
			// A child's pid cannot be reused before it is reaped.
			unix.Kill(pid, unix.SIGKILL)
		}
		_, err = unix.Wait4(-1, nil, 0, nil)
		switch {
		case errors.Is(err, unix.ECHILD):
			return nil
		case err != nil && !errors.Is(err, unix.EINTR):
			return err
		}
	}
}

// childProcesses lists the processes whose parent is pid, from /proc.
func childProcesses(pid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var children []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		if ppid, ok := statParent(stat); ok && ppid == pid {
			children = append(children, child)
		}
	}
	return children, nil
}

// statParent returns the parent pid from the contents of /proc/PID/stat,
// "pid (comm) state ppid ...", where comm may hold spaces and parentheses.
func statParent(stat []byte) (int, bool) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	fields := bytes.Fields(stat[i+1:])
	if len(fields) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(string(fields[1]))
	return ppid, err == nil
}
