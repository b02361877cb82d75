package sandbox

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// defaultCapabilities are the capabilities Docker grants a container, and so
// a RUN of `docker build`. Without the others a root command cannot mount,
// load kernel modules, change the clock or reboot the machine.
var defaultCapabilities = map[int]bool{
	unix.CAP_CHOWN:            true,
	unix.CAP_DAC_OVERRIDE:     true,
	unix.CAP_FOWNER:           true,
	unix.CAP_FSETID:           true,
	unix.CAP_KILL:             true,
	unix.CAP_SETGID:           true,
	unix.CAP_SETUID:           true,
	unix.CAP_SETPCAP:          true,
	unix.CAP_NET_BIND_SERVICE: true,
	unix.CAP_NET_RAW:          true,
	unix.CAP_SYS_CHROOT:       true,
	unix.CAP_MKNOD:            true,
	unix.CAP_AUDIT_WRITE:      true,
	unix.CAP_SETFCAP:          true,
}

// dropCapabilities removes every other capability from the bounding set of
// the calling thread, which the processes it starts inherit: a root command
// gets no more than the bounding set, and a non-root one none at all.
func dropCapabilities() error {
	// Capabilities are numbered from 0; the kernel rejects the first number
	// past the last one it knows with EINVAL.
	for c := 0; ; c++ {
		if defaultCapabilities[c] {
			continue
		}
		err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0)
		switch {
		case errors.Is(err, unix.EINVAL):
			return nil
		case err != nil:
			return fmt.Errorf("dropping capability %d from the bounding set: %w", c, err)
		}
	}
}
