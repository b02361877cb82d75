package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// inPlace is in-place isolation: the command runs in "/" of the container
// kiln runs in, under a helper that is a child subreaper, so that every
// process the command starts, daemons included, is ended after it.
//
// Nothing can be mounted or unshared there, so the command gets only what
// a process can take away from its children: capabilities beyond a RUN's,
// ambient ones, and a seccomp filter when kiln has CAP_SYS_ADMIN (without
// it the container's own filter applies). kiln's own process is not
// dumpable (see Init), and kiln's own files are checked and put back after
// every RUN (ownFiles).
type inPlace struct {
	opts     options
	seccomp  seccompPlan
	own      *ownFiles
	announce sync.Once
}

func newInPlace(o options) (*inPlace, error) {
	mounts, err := Protected()
	if err != nil {
		return nil, fmt.Errorf("listing mount points: %w", err)
	}
	own, err := recordOwnFiles(ownFileRoots, mounts)
	if err != nil {
		return nil, err
	}
	if exe, err := os.Executable(); err == nil {
		if err := checkKilnBinaries(exe, kilnBinaries, own.selfHash); err != nil {
			return nil, err
		}
	}
	return &inPlace{
		opts:    o,
		seccomp: planSeccomp(hasEffectiveCapability(unix.CAP_SYS_ADMIN)),
		own:     own,
	}, nil
}

func (s *inPlace) Mode() Mode { return ModeInPlace }

func (s *inPlace) Run(ctx context.Context, spec *Spec) error {
	if err := spec.validate(); err != nil {
		return err
	}
	if filepath.Clean(spec.Rootfs) != "/" {
		return fmt.Errorf("in-place isolation runs in \"/\", not in %q", spec.Rootfs)
	}
	if spec.Network == NetworkNone {
		return errors.New("RUN --network=none cannot be honoured with in-place isolation: kiln may not create network namespaces here")
	}
	if len(spec.Mounts) > 0 {
		return fmt.Errorf("RUN --mount (%s at %q) cannot be honoured with in-place isolation: kiln may not mount here", spec.Mounts[0].Type, spec.Mounts[0].Target)
	}
	s.announce.Do(func() {
		logPlan(s.opts.log, "RUN network: kiln's own, that of the container it runs in (in-place isolation)", false)
		logPlan(s.opts.log, s.seccomp.note, s.seccomp.warn)
	})
	if spec.Hostname != "" || spec.Hosts != nil || spec.ResolvConf != nil {
		s.opts.log.Debug("sandbox: in-place isolation uses the container's host name, /etc/hosts and /etc/resolv.conf")
	}
	c := command{
		Args: spec.Args, Env: spec.Env, Dir: spec.Dir,
		LimitCapabilities: true, Capabilities: runCapabilities, Seccomp: s.seccomp.filter,
	}
	if euid, egid := os.Geteuid(), os.Getegid(); euid == 0 {
		c.SetCredential = true
		c.UID, c.GID, c.Groups = spec.UID, spec.GID, spec.Groups
	} else if spec.UID != uint32(euid) || spec.GID != uint32(egid) {
		return fmt.Errorf("in-place isolation can run a command as uid %d, gid %d only as root, and kiln runs as uid %d, gid %d", spec.UID, spec.GID, euid, egid)
	}
	s.opts.log.Debugf("sandbox: in-place isolation: %q", spec.Args)
	// SIGTERM asks the helper to end the command and whatever it started.
	runErr := startHelper(ctx, &helperConfig{Command: c}, spec, &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}, syscall.SIGTERM, nil)
	// Whatever became of the command, kiln's files are checked: a command
	// may change them and then fail.
	changed, err := s.own.check()
	switch {
	case err != nil:
		return fmt.Errorf("the RUN changed kiln's own files (%s) and kiln could not put all of them back: %w; "+
			"do not build in this container again", strings.Join(quoteAll(changed), ", "), err)
	case len(changed) > 0:
		return fmt.Errorf("the RUN changed kiln's own files, which kiln has put back: %s", strings.Join(quoteAll(changed), ", "))
	}
	return runErr
}

func quoteAll(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = fmt.Sprintf("%q", p)
	}
	return out
}
