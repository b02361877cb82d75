package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/sirupsen/logrus"
)

// Sandbox runs commands in one isolation mode.
type Sandbox interface {
	// Mode is the isolation mode.
	Mode() Mode
	// Run runs the command of spec and waits for it. When the command exits
	// (or ctx is done, which kills it) every process it started is ended and
	// everything mounted for it is gone, including mount points created in
	// the root filesystem. A command that exits non-zero or is killed by a
	// signal returns an *ExitError.
	Run(ctx context.Context, spec *Spec) error
}

// ExitError reports a command that did not exit with status 0.
type ExitError struct {
	// Code is the exit status, or 128 plus the signal number when the
	// command was killed by a signal, as shells report it.
	Code int
	// Signal names the signal that killed the command ("SIGKILL"), if any.
	Signal string
}

func (e *ExitError) Error() string {
	if e.Signal != "" {
		return "killed by signal " + e.Signal
	}
	return fmt.Sprintf("exited with code %d", e.Code)
}

// Option configures New.
type Option func(*options)

type options struct {
	workDir string
	log     logrus.FieldLogger
}

// WithWorkDir sets the directory for the files kiln generates for a RUN
// (/etc/hosts, /etc/resolv.conf, /etc/hostname); each Run uses and removes
// a fresh subdirectory. The default is os.TempDir().
func WithWorkDir(dir string) Option {
	return func(o *options) { o.workDir = dir }
}

// WithLogger sets the logger for debug details; the default is logrus's
// standard logger.
func WithLogger(log logrus.FieldLogger) Option {
	return func(o *options) { o.log = log }
}

// New returns the sandbox of a concrete mode (see Resolve). ModeRootless
// needs a process that entered kiln's user namespace (EnterUserNamespace).
func New(mode Mode, opts ...Option) (Sandbox, error) {
	o := options{workDir: os.TempDir(), log: logrus.StandardLogger()}
	for _, opt := range opts {
		opt(&o)
	}
	switch mode {
	case ModeChroot:
		if os.Geteuid() != 0 {
			return nil, fmt.Errorf("chroot isolation needs root (running as uid %d)", os.Geteuid())
		}
		return newNamespaced(mode, o)
	case ModeRootless:
		if !inUserNamespace {
			return nil, errors.New("rootless isolation needs kiln to enter its user namespace first (sandbox.EnterUserNamespace)")
		}
		return newNamespaced(mode, o)
	case ModeInPlace:
		return newInPlace(o)
	case ModeAuto:
		return nil, errors.New("isolation \"auto\" must be resolved to a mode first (sandbox.Resolve)")
	}
	return nil, fmt.Errorf("unknown isolation %q", mode)
}
