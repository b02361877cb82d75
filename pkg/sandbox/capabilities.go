package sandbox

import (
	"errors"
	"fmt"
	"math/bits"
	"strings"

	"golang.org/x/sys/unix"
)

// capSet is a set of capabilities: bit c stands for capability number c.
type capSet uint64

func capsOf(caps ...int) capSet {
	var s capSet
	for _, c := range caps {
		s |= 1 << c
	}
	return s
}

func (s capSet) has(c int) bool { return c >= 0 && c < 64 && s&(1<<c) != 0 }

// names lists the capabilities of s by name ("CAP_CHOWN"), in number order.
func (s capSet) names() []string {
	var out []string
	for rest := uint64(s); rest != 0; rest &= rest - 1 {
		out = append(out, capName(bits.TrailingZeros64(rest)))
	}
	return out
}

func (s capSet) String() string { return strings.Join(s.names(), ", ") }

// capNames names the capabilities kiln deals with; others print by number.
var capNames = map[int]string{
	unix.CAP_CHOWN:            "CAP_CHOWN",
	unix.CAP_DAC_OVERRIDE:     "CAP_DAC_OVERRIDE",
	unix.CAP_DAC_READ_SEARCH:  "CAP_DAC_READ_SEARCH",
	unix.CAP_FOWNER:           "CAP_FOWNER",
	unix.CAP_FSETID:           "CAP_FSETID",
	unix.CAP_KILL:             "CAP_KILL",
	unix.CAP_SETGID:           "CAP_SETGID",
	unix.CAP_SETUID:           "CAP_SETUID",
	unix.CAP_SETPCAP:          "CAP_SETPCAP",
	unix.CAP_LINUX_IMMUTABLE:  "CAP_LINUX_IMMUTABLE",
	unix.CAP_NET_BIND_SERVICE: "CAP_NET_BIND_SERVICE",
	unix.CAP_NET_ADMIN:        "CAP_NET_ADMIN",
	unix.CAP_NET_RAW:          "CAP_NET_RAW",
	unix.CAP_SYS_MODULE:       "CAP_SYS_MODULE",
	unix.CAP_SYS_RAWIO:        "CAP_SYS_RAWIO",
	unix.CAP_SYS_CHROOT:       "CAP_SYS_CHROOT",
	unix.CAP_SYS_PTRACE:       "CAP_SYS_PTRACE",
	unix.CAP_SYS_ADMIN:        "CAP_SYS_ADMIN",
	unix.CAP_SYS_BOOT:         "CAP_SYS_BOOT",
	unix.CAP_SYS_NICE:         "CAP_SYS_NICE",
	unix.CAP_SYS_RESOURCE:     "CAP_SYS_RESOURCE",
	unix.CAP_SYS_TIME:         "CAP_SYS_TIME",
	unix.CAP_MKNOD:            "CAP_MKNOD",
	unix.CAP_AUDIT_WRITE:      "CAP_AUDIT_WRITE",
	unix.CAP_SETFCAP:          "CAP_SETFCAP",
	unix.CAP_SYSLOG:           "CAP_SYSLOG",
	unix.CAP_BPF:              "CAP_BPF",
	unix.CAP_PERFMON:          "CAP_PERFMON",
}

func capName(c int) string {
	if n, ok := capNames[c]; ok {
		return n
	}
	return fmt.Sprintf("capability %d", c)
}

// dockerCapabilities are the capabilities Docker grants a container, and so
// a RUN of `docker build`. Without the others a root command cannot mount,
// load kernel modules, trace other processes, change the clock or reboot
// the machine.
var dockerCapabilities = capsOf(
	unix.CAP_CHOWN, unix.CAP_DAC_OVERRIDE, unix.CAP_FOWNER, unix.CAP_FSETID, unix.CAP_KILL,
	unix.CAP_SETGID, unix.CAP_SETUID, unix.CAP_SETPCAP, unix.CAP_NET_BIND_SERVICE, unix.CAP_NET_RAW,
	unix.CAP_SYS_CHROOT, unix.CAP_MKNOD, unix.CAP_AUDIT_WRITE, unix.CAP_SETFCAP,
)

// runCapabilities are the most a RUN command gets: Docker's defaults
// without CAP_MKNOD. Docker lets a container create device nodes because
// its device cgroup stops them from being opened; kiln has no device
// cgroup, so a RUN may not create them at all (see docs/security.md).
// Being short of a capability that the other processes of a default
// container have also keeps a RUN in in-place isolation out of their
// memory: Linux lets a process read another one's /proc/PID/environ or
// mem only if it has every capability the other one has (or
// CAP_SYS_PTRACE, which a RUN never has).
var runCapabilities = dockerCapabilities &^ capsOf(unix.CAP_MKNOD)

// limitCapabilities makes the calling thread start commands with at most
// the capabilities keep: it empties its ambient and inheritable sets, which
// exec would pass on, and lowers its bounding set, which caps what exec
// grants (a root command gets all of it).
//
// Lowering the bounding set needs CAP_SETPCAP. Without it the capabilities
// beyond keep are an error when the command runs as root (it would get
// them), and harmless otherwise: a command that is not root gets no
// capability from the bounding set except through file capabilities and
// set-user-ID programs, which the same user could run without kiln.
func limitCapabilities(keep capSet, rootCommand bool) error {
	// Kernels before 4.3 have no ambient set (EINVAL): nothing to clear.
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("clearing the ambient capabilities: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("reading the capabilities: %w", err)
	}
	if data[0].Inheritable != 0 || data[1].Inheritable != 0 {
		data[0].Inheritable, data[1].Inheritable = 0, 0
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			return fmt.Errorf("clearing the inheritable capabilities: %w", err)
		}
	}
	var kept capSet
	// Capabilities are numbered from 0; the kernel answers EINVAL for the
	// first number past the last one it knows.
	for c := 0; c < 64; c++ {
		in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0)
		if errors.Is(err, unix.EINVAL) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the bounding set: %w", err)
		}
		if in == 0 || keep.has(c) {
			continue
		}
		err = unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0)
		switch {
		case errors.Is(err, unix.EPERM):
			kept |= 1 << c
		case err != nil:
			return fmt.Errorf("dropping %s from the bounding set: %w", capName(c), err)
		}
	}
	if kept != 0 && rootCommand {
		return fmt.Errorf("kiln may not lower its capability bounding set (it lacks CAP_SETPCAP), "+
			"which holds capabilities a RUN command as root must not have: %s; "+
			"give kiln CAP_SETPCAP or remove those capabilities from its container", kept)
	}
	return nil
}
