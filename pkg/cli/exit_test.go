package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/pkg/sandbox"
)

// runCommand runs a root command whose RunE is f, as Execute does, with
// signals fed from sigs.
func runCommand(t *testing.T, f func(cmd *cobra.Command) error, sigs chan os.Signal, grace time.Duration) (int, string) {
	t.Helper()
	root := &cobra.Command{Use: "kiln", SilenceErrors: true, SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error { return f(cmd) }}
	root.SetArgs(nil)
	var stderr bytes.Buffer
	status := run(root, sigs, grace, &stderr)
	return status, stderr.String()
}

// runError is how the executor reports a failed RUN: its own type,
// unwrapping to the sandbox's *ExitError.
type runError struct{ exit *sandbox.ExitError }

func (e *runError) Error() string { return "RUN: " + e.exit.Error() }
func (e *runError) Unwrap() error { return e.exit }

func TestExitStatusOfFailedRun(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("plain failure"), 1},
		{fmt.Errorf("Dockerfile:3: RUN false: %w", &runError{&sandbox.ExitError{Code: 7}}), 7},
		{fmt.Errorf("stage %q: %w", "build", &sandbox.ExitError{Code: 137, Signal: "SIGKILL"}), 137},
		{&sandbox.ExitError{Code: 1}, 1},
		{fmt.Errorf("odd: %w", &sandbox.ExitError{Code: 300}), 1},
		{fmt.Errorf("canceled without a signal: %w", context.Canceled), 1},
	} {
		status, stderr := runCommand(t, func(*cobra.Command) error { return tc.err }, make(chan os.Signal), time.Second)
		if status != tc.want {
			t.Errorf("error %v: exit status %d, want %d", tc.err, status, tc.want)
		}
		if tc.err != nil && !strings.Contains(stderr, "kiln: error: "+tc.err.Error()) {
			t.Errorf("error %v not printed: %q", tc.err, stderr)
		}
	}
}

func TestSignalsEndKiln(t *testing.T) {
	blocked := make(chan struct{})
	t.Cleanup(func() { close(blocked) })
	// A command that never looks at its context, like a read of a FIFO.
	deaf := func(*cobra.Command) error { <-blocked; return nil }
	// A command that stops when cancelled.
	obedient := func(cmd *cobra.Command) error {
		<-cmd.Context().Done()
		return fmt.Errorf("RUN sleep: %w", cmd.Context().Err())
	}
	for _, tc := range []struct {
		name    string
		f       func(*cobra.Command) error
		signals []os.Signal
		want    int
		says    string
	}{
		{"SIGTERM, deaf", deaf, []os.Signal{syscall.SIGTERM}, 143, "did not stop within 50ms"},
		{"SIGINT, deaf", deaf, []os.Signal{syscall.SIGINT}, 130, "did not stop within 50ms"},
		{"SIGTERM twice, deaf", deaf, []os.Signal{syscall.SIGTERM, syscall.SIGTERM}, 143, "stopped by SIGTERM, then SIGTERM"},
		{"SIGTERM, obedient", obedient, []os.Signal{syscall.SIGTERM}, 143, "kiln: stopped by SIGTERM\n"},
		{"SIGINT, obedient", obedient, []os.Signal{syscall.SIGINT}, 130, "kiln: stopped by SIGINT\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sigs := make(chan os.Signal, len(tc.signals))
			for _, s := range tc.signals {
				sigs <- s
			}
			grace := 50 * time.Millisecond
			if len(tc.signals) > 1 {
				grace = time.Hour // only the second signal can end the wait
			}
			status, stderr := runCommand(t, tc.f, sigs, grace)
			if status != tc.want || !strings.Contains(stderr, tc.says) {
				t.Fatalf("exit status %d, want %d; stderr %q lacks %q", status, tc.want, stderr, tc.says)
			}
			if strings.Contains(stderr, "context canceled") {
				t.Errorf("the cancellation is reported as an error: %q", stderr)
			}
		})
	}
}
