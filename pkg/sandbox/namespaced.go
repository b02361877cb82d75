package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// namespaced is chroot isolation, and rootless isolation when kiln runs in
// its user namespace: the two differ only in what the kernel lets the
// helper do (see rootSetup).
type namespaced struct {
	mode Mode
	opts options
	// net is how RUN commands with the default network are connected.
	net netPlan
	// seccomp is the filter of RUN commands.
	seccomp  seccompPlan
	announce sync.Once
}

func newNamespaced(mode Mode, o options) (*namespaced, error) {
	net, err := planNetwork(DetectContainer, exec.LookPath, os.Getenv, openTun)
	if err != nil {
		return nil, err
	}
	return &namespaced{mode: mode, opts: o, net: net, seccomp: planSeccomp(true)}, nil
}

// announceOnce logs, at the first RUN of the build, the network and the
// seccomp filter RUN commands get.
func (s *namespaced) announceOnce() {
	s.announce.Do(func() {
		logPlan(s.opts.log, s.net.why, s.net.warn)
		logPlan(s.opts.log, s.seccomp.note, s.seccomp.warn)
	})
}

func (s *namespaced) Mode() Mode { return s.mode }

func (s *namespaced) Run(ctx context.Context, spec *Spec) (err error) {
	if err := spec.validate(); err != nil {
		return err
	}
	rootfs, err := filepath.EvalSymlinks(spec.Rootfs)
	if err != nil {
		return fmt.Errorf("root filesystem: %w", err)
	}
	if rootfs == "/" {
		return fmt.Errorf("%s isolation cannot run in the machine's own root filesystem", s.mode)
	}
	s.announceOnce()
	cmd, err := namespacedCommand(spec)
	if err != nil {
		return err
	}
	cmd.Seccomp = s.seccomp.filter
	// The network of this RUN: a namespace of its own with loopback only
	// (none), connected by user-mode networking (the default on a host
	// with pasta or slirp4netns), or kiln's.
	newNet := spec.Network == NetworkNone
	userNet := false
	if spec.Network == "" || spec.Network == NetworkDefault {
		switch {
		case s.net.userNetwork():
			newNet, userNet = true, true
		case s.net.kind == netHostNoRaw:
			// Raw sockets in the machine's network namespace could
			// sniff and forge its traffic.
			cmd.Capabilities &^= capsOf(unix.CAP_NET_RAW)
		}
	}

	runDir, err := os.MkdirTemp(s.opts.workDir, "run-")
	if err != nil {
		return fmt.Errorf("creating the RUN's work directory: %w", err)
	}
	defer os.RemoveAll(runDir)
	var resolv []byte
	var dnsForward string
	if userNet && spec.ResolvConf == nil {
		resolv, dnsForward = s.net.resolvConf(defaultResolvConf())
	}
	etc, err := writeEtcFiles(runDir, spec, resolv)
	if err != nil {
		return fmt.Errorf("writing /etc files for the RUN: %w", err)
	}
	steps := mountSteps(spec, etc)

	points := newMountPoints(rootfs)
	defer func() {
		if rmErr := points.remove(); rmErr != nil {
			err = errors.Join(err, rmErr)
		}
	}()
	for _, st := range steps {
		if !st.Nested {
			if err := points.ensure(st.Target, st.File); err != nil {
				return err
			}
		}
	}

	flags := uintptr(unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC)
	if newNet {
		flags |= unix.CLONE_NEWNET
	}
	cfg := &helperConfig{
		Root: &rootSetup{
			Rootfs:   rootfs,
			Hostname: spec.hostname(),
			Loopback: newNet,
			Mounts:   steps,
		},
		Command: cmd,
	}
	var connect func(pid int) (func(), error)
	if userNet {
		// Before the helper gets its configuration, and so before the
		// command starts, its network namespace is connected.
		connect = func(pid int) (func(), error) {
			disconnect, err := s.net.connect(pid, dnsForward)
			if err != nil {
				s.opts.log.Warnf("RUN network: %v; this RUN has only a loopback interface (RUN --network=host would share this machine's network)", err)
				return func() {}, nil
			}
			return disconnect, nil
		}
	}
	s.opts.log.Debugf("sandbox: %s isolation in %q: %q", s.mode, rootfs, spec.Args)
	// The helper is PID 1 of its PID namespace: killing it ends every
	// process of the namespace.
	attr := &syscall.SysProcAttr{Cloneflags: flags, Pdeathsig: syscall.SIGKILL}
	return startHelper(ctx, cfg, spec, attr, os.Kill, connect)
}

// logPlan logs a line about what RUN commands get, at info level or as a
// warning.
func logPlan(log logrus.FieldLogger, line string, warn bool) {
	switch {
	case line == "":
	case warn:
		log.Warn(line)
	default:
		log.Info(line)
	}
}

// namespacedCommand is the command of spec, run with its identity, which
// the user namespace kiln runs in (if any) must map.
func namespacedCommand(spec *Spec) (command, error) {
	c := command{
		Args:              spec.Args,
		Env:               spec.Env,
		Dir:               spec.Dir,
		SetCredential:     true,
		UID:               spec.UID,
		GID:               spec.GID,
		Groups:            spec.Groups,
		LimitCapabilities: true,
		Capabilities:      runCapabilities,
	}
	ids, err := readIDMaps("/proc/self")
	if err != nil {
		return command{}, err
	}
	if !ids.uids.maps(spec.UID) {
		return command{}, ids.unmapped("uid", spec.UID)
	}
	for _, gid := range append([]uint32{spec.GID}, spec.Groups...) {
		if !ids.gids.maps(gid) {
			return command{}, ids.unmapped("gid", gid)
		}
	}
	if ids.setgroupsDenied {
		// The primary group needs no setgroups: asking for it alone (what
		// initgroups gives a user in no other group) is fine.
		for _, g := range spec.Groups {
			if g != spec.GID {
				return command{}, fmt.Errorf("supplementary groups %v cannot be set in kiln's user namespace, which has a single mapping: %s", spec.Groups, subIDHint)
			}
		}
		c.NoSetGroups = true
	}
	return c, nil
}

// mountSteps lists the mounts of a RUN: /proc, /dev and /sys, then the
// generated /etc files and the RUN's own mounts, parents before the mounts
// nested in them. A RUN mount at the path of a generated file replaces it.
func mountSteps(spec *Spec, etc map[string]string) []mountStep {
	steps := []mountStep{
		{Kind: kindProc, Target: "/proc"},
		{Kind: kindDev, Target: "/dev"},
		{Kind: kindSysfs, Target: "/sys"},
	}
	var rest []mountStep
	for _, target := range []string{etcHosts, etcResolv, etcHostname} {
		if !slices.ContainsFunc(spec.Mounts, func(m Mount) bool { return path.Clean(m.Target) == target }) {
			rest = append(rest, mountStep{Kind: kindBind, Source: etc[target], Target: target, File: true})
		}
	}
	for _, m := range spec.Mounts {
		st := mountStep{Kind: kindBind, Source: m.Source, Target: path.Clean(m.Target), ReadOnly: m.ReadOnly}
		switch m.Type {
		case MountTmpfs:
			st = mountStep{Kind: kindTmpfs, Target: st.Target, Size: m.Size}
		case MountSecret:
			st.ReadOnly = true
			st.File = true
		case MountBind:
			if fi, err := os.Stat(m.Source); err == nil && !fi.IsDir() {
				st.File = true
			}
		}
		rest = append(rest, st)
	}
	slices.SortStableFunc(rest, func(a, b mountStep) int {
		return strings.Count(a.Target, "/") - strings.Count(b.Target, "/")
	})
	steps = append(steps, rest...)
	for i := range steps {
		steps[i].Nested = slices.ContainsFunc(steps[:i], func(outer mountStep) bool {
			return strings.HasPrefix(steps[i].Target, outer.Target+"/")
		})
	}
	return steps
}
