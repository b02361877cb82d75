package integration

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/testutil"
)

// SIGTERM ends kiln, with status 143, even while it is blocked reading the
// Dockerfile from a FIFO nobody writes to.
func TestSIGTERMEndsBlockedBuild(t *testing.T) {
	kiln := testutil.Kiln(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "Dockerfile")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(kiln, "build", "--context", dir, "--dockerfile", fifo, "--no-push", "--kiln-dir", t.TempDir())
	cmd.Env = append(os.Environ(), isolatedEnv(t)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	// A writer that never writes: once kiln has the FIFO open for reading,
	// opening the other end succeeds, and kiln's read blocks.
	var writer *os.File
	for writer == nil {
		f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		switch {
		case err == nil:
			writer = f
		case errors.Is(err, syscall.ENXIO): // no reader yet
			select {
			case err := <-exited:
				t.Fatalf("kiln exited before reading the Dockerfile: %v\n%s", err, out.String())
			case <-time.After(20 * time.Millisecond):
			}
		default:
			t.Fatal(err)
		}
	}
	defer writer.Close()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 143 {
			t.Fatalf("kiln ended with %v, want exit status 143\n%s", err, out.String())
		}
		if !strings.Contains(out.String(), "stopped by SIGTERM") {
			t.Errorf("kiln did not say why it stopped:\n%s", out.String())
		}
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		t.Fatalf("kiln ignored SIGTERM while blocked on a FIFO\n%s", out.String())
	}
}
