package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// probeIsolation tries what chroot isolation does, in a throwaway helper:
// new mount, PID, UTS and IPC namespaces (in a new user namespace too when
// rootless), a tmpfs, a fresh /proc in it, and pivot_root into it. Seccomp
// profiles, missing capabilities, AppArmor and sysctls can each forbid one
// of these, so nothing is assumed.
func probeIsolation(rootless bool) error {
	dir, err := os.MkdirTemp("", "kiln-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cmd := exec.Command("/proc/self/exe", dir)
	cmd.Args[0] = "kiln-sandbox-probe"
	cmd.Env = []string{helperEnv + "=" + helperProbe}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC,
		Pdeathsig:  syscall.SIGKILL,
	}
	if rootless {
		cmd.SysProcAttr.Cloneflags |= unix.CLONE_NEWUSER
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}}
		cmd.SysProcAttr.GidMappingsEnableSetgroups = false
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := cmd.Start
	if rootless {
		// This process writes the child's ID maps (see whileDumpable).
		start = func() error { return whileDumpable(cmd.Start) }
	}
	err = start()
	if err == nil {
		err = cmd.Wait()
	}
	if err != nil {
		if msg := strings.TrimSpace(out.String()); msg != "" {
			return errors.New(msg)
		}
		return err
	}
	return nil
}

// probeHelper is the probe's helper: it prints why it failed.
func probeHelper() int {
	if len(os.Args) != 2 {
		fmt.Println("sandbox probe: want a directory argument")
		return 2
	}
	if err := probe(os.Args[1]); err != nil {
		fmt.Println(err)
		return 1
	}
	return 0
}

func probe(dir string) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		return fmt.Errorf("mounting a tmpfs: %w", err)
	}
	proc := filepath.Join(dir, "proc")
	if err := os.Mkdir(proc, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("proc", proc, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mounting /proc: %w", err)
	}
	return pivotRoot(dir)
}
