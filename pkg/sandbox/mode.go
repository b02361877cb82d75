package sandbox

import (
	"errors"
	"fmt"
	"os"
)

// Mode is an isolation mode.
type Mode string

// The isolation modes; see the package documentation.
const (
	ModeAuto     Mode = "auto"
	ModeChroot   Mode = "chroot"
	ModeRootless Mode = "rootless"
	ModeInPlace  Mode = "in-place"
)

// ParseMode parses the value of --isolation.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeAuto, ModeChroot, ModeRootless, ModeInPlace:
		return m, nil
	}
	return "", fmt.Errorf("unknown isolation %q: want %q, %q, %q or %q", s, ModeAuto, ModeChroot, ModeRootless, ModeInPlace)
}

// Resolve turns the requested mode into the mode to use and says why, for a
// log line such as "isolation chroot: running as root outside a container".
//
// ModeAuto picks in-place inside a container that does not permit mounts,
// chroot as root elsewhere and rootless as a non-root user; whether
// namespaces and mounts are permitted is found out by trying them in a
// throwaway child process. In-place isolation lets RUN commands modify "/"
// of the machine kiln runs on, so it is refused outside a container unless
// force is set.
//
// A process that entered kiln's user namespace (EnterUserNamespace)
// resolves ModeAuto and ModeRootless to ModeRootless.
func Resolve(m Mode, force bool) (Mode, string, error) {
	return hostEnvironment().resolve(m, force)
}

// environment holds the facts Resolve decides on, so that the decision can
// be tested without changing the machine.
type environment struct {
	euid      int
	inUserNS  bool
	userNS    func() string // describes the user namespace kiln entered
	container func() (bool, string)
	// probe reports whether the namespaces and mounts of chroot isolation
	// (rootless: inside a new user namespace) are permitted.
	probe func(rootless bool) error
}

func hostEnvironment() environment {
	return environment{
		euid:      os.Geteuid(),
		inUserNS:  inUserNamespace,
		userNS:    describeUserNamespace,
		container: DetectContainer,
		probe:     probeIsolation,
	}
}

func (e environment) resolve(m Mode, force bool) (Mode, string, error) {
	switch m {
	case ModeInPlace:
		if in, why := e.container(); in {
			return ModeInPlace, "requested, running in a container (" + why + ")", nil
		}
		if force {
			return ModeInPlace, "requested and forced outside a container: RUN commands change this machine's root filesystem", nil
		}
		return "", "", errors.New("refusing in-place isolation outside a container: RUN commands would change the root filesystem of this machine; " +
			"use --isolation=chroot (root) or --isolation=rootless, or add --force if this machine is disposable")
	case ModeChroot:
		if e.euid != 0 {
			return "", "", fmt.Errorf("chroot isolation needs root (running as uid %d): use --isolation=rootless", e.euid)
		}
		return ModeChroot, "requested, running as root", nil
	case ModeRootless:
		if e.inUserNS {
			return ModeRootless, "requested, " + e.userNS(), nil
		}
		return ModeRootless, "requested", nil
	case ModeAuto:
		return e.auto()
	}
	return "", "", fmt.Errorf("unknown isolation %q", m)
}

func (e environment) auto() (Mode, string, error) {
	if e.inUserNS {
		return ModeRootless, e.userNS(), nil
	}
	if e.euid != 0 {
		if err := e.probe(true); err != nil {
			return "", "", fmt.Errorf("running as uid %d and user namespaces are not permitted (%v): run kiln as root, "+
				"or allow unprivileged user namespaces (sysctls user.max_user_namespaces, kernel.unprivileged_userns_clone, "+
				"kernel.apparmor_restrict_unprivileged_userns)", e.euid, err)
		}
		return ModeRootless, fmt.Sprintf("running as uid %d, user namespaces are permitted", e.euid), nil
	}
	in, why := e.container()
	err := e.probe(false)
	switch {
	case err == nil && in:
		return ModeChroot, "running as root in a container (" + why + ") that permits mount namespaces", nil
	case err == nil:
		return ModeChroot, "running as root outside a container", nil
	case in:
		return ModeInPlace, fmt.Sprintf("running in a container (%s) that does not permit mount namespaces (%v)", why, err), nil
	}
	return "", "", fmt.Errorf("running as root outside a container, but mount namespaces are not permitted (%v): "+
		"use --isolation=in-place --force only if this machine is disposable", err)
}
