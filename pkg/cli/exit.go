package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/pkg/sandbox"
)

// signalGrace is how long a build may take to stop after SIGTERM or SIGINT
// (ending a RUN's processes, removing its work directory) before kiln exits
// anyway: a read blocked on a FIFO or a stalled network does not see the
// cancellation. It is well within Kubernetes' default 30 s grace period.
const signalGrace = 5 * time.Second

// run executes root until it returns, or until a signal arrives on
// signals: then root's context is cancelled and root gets grace to return;
// a second signal, or the end of grace, ends the wait. The exit status is:
// 0 on success; 128 plus the signal's number after SIGTERM (143) or SIGINT
// (130), unless the command had finished successfully; the exit status of
// a failed RUN (a *sandbox.ExitError in the error's chain), as kaniko and
// buildah pass it on; 1 for any other error. Errors are printed to stderr.
func run(root *cobra.Command, signals <-chan os.Signal, grace time.Duration, stderr io.Writer) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()

	var sig os.Signal
	select {
	case err := <-done:
		return report(stderr, err)
	case sig = <-signals:
	}
	logrus.StandardLogger().Warnf("Received %s: stopping the build (waiting at most %s for it to clean up)", signalName(sig), grace)
	cancel()
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case err := <-done:
		if err == nil {
			return 0
		}
		if !errors.Is(err, context.Canceled) {
			fmt.Fprintf(stderr, "kiln: error: %v\n", err)
		}
		fmt.Fprintf(stderr, "kiln: stopped by %s\n", signalName(sig))
	case <-timer.C:
		fmt.Fprintf(stderr, "kiln: stopped by %s: the build did not stop within %s, exiting without waiting for it\n", signalName(sig), grace)
	case again := <-signals:
		fmt.Fprintf(stderr, "kiln: stopped by %s, then %s: exiting without waiting for the build\n", signalName(sig), signalName(again))
	}
	return signalStatus(sig)
}

// report prints err, if any, and returns the exit status for it.
func report(stderr io.Writer, err error) int {
	if err == nil {
		return 0
	}
	// The error ends the log, whatever the build did with the logger's
	// output.
	logrus.StandardLogger().SetOutput(os.Stderr)
	fmt.Fprintf(stderr, "kiln: error: %v\n", err)
	return exitStatus(err)
}

// exitStatus is the status kiln exits with for err: a failed RUN's own
// status, else 1.
func exitStatus(err error) int {
	var exit *sandbox.ExitError
	if errors.As(err, &exit) && exit.Code > 0 && exit.Code < 256 {
		return exit.Code
	}
	return 1
}

// signalStatus is the shell's status for a process ended by sig.
func signalStatus(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return 1
}

func signalName(sig os.Signal) string {
	switch sig {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGINT:
		return "SIGINT"
	}
	return sig.String()
}
