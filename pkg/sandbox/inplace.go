package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// inPlace is in-place isolation: the command runs in "/" of the container
// kiln runs in, under a helper that is a child subreaper, so that every
// process the command starts, daemons included, is ended after it.
type inPlace struct {
	opts options
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
	if spec.Hostname != "" || spec.Hosts != nil || spec.ResolvConf != nil {
		s.opts.log.Debug("sandbox: in-place isolation uses the container's host name, /etc/hosts and /etc/resolv.conf")
	}
	c := command{Args: spec.Args, Env: spec.Env, Dir: spec.Dir}
	if euid, egid := os.Geteuid(), os.Getegid(); euid == 0 {
		c.SetCredential = true
		c.UID, c.GID, c.Groups = spec.UID, spec.GID, spec.Groups
	} else if spec.UID != uint32(euid) || spec.GID != uint32(egid) {
		return fmt.Errorf("in-place isolation can run a command as uid %d, gid %d only as root, and kiln runs as uid %d, gid %d", spec.UID, spec.GID, euid, egid)
	}
	s.opts.log.Debugf("sandbox: in-place isolation: %q", spec.Args)
	// SIGTERM asks the helper to end the command and whatever it started.
	return startHelper(ctx, &helperConfig{Command: c}, spec, &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}, syscall.SIGTERM)
}
