package integration

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/testutil"
)

// A build killed with SIGKILL leaves its work directory; the secret it held
// was in memory (/dev/shm), not in it, and the next build sharing the
// --kiln-dir removes what the dead build left.
func TestKilledBuildLeavesNoSecretBehind(t *testing.T) {
	testutil.RequireRoot(t, "RUN with chroot isolation")
	e := newEnv(t)
	base := pushBusybox(e)
	kilnDir := t.TempDir()
	const secret = "s3cr3t-of-a-killed-build"
	secretFile := filepath.Join(t.TempDir(), "tok")
	os.WriteFile(secretFile, []byte(secret), 0o600)
	dir := writeFiles(t, map[string]string{"Dockerfile": "FROM " + base + `
RUN --mount=type=secret,id=tok touch /started && sleep 60
`})
	cmd := exec.Command(e.kiln, "build", "--context", dir, "--insecure-registry", e.reg.Host, "--kiln-dir", kilnDir,
		"-d", e.ref("test/killed:1"), "--secret", "id=tok,src="+secretFile)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait for the RUN to hold its secret.
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String(), "RUN --mount=type=secret") {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the RUN did not start:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	builds, _ := filepath.Glob(filepath.Join(kilnDir, "build-*"))
	if len(builds) == 0 {
		t.Fatal("the killed build left nothing: the test proves nothing")
	}
	if found := grepTree(t, kilnDir, secret); found != "" {
		t.Errorf("the secret is on disk in --kiln-dir: %s", found)
	}

	// The next build cleans up after the dead one.
	ok := writeFiles(t, map[string]string{"Dockerfile": "FROM " + base + "\nRUN true\n"})
	e.build(ok, "--kiln-dir", kilnDir, "-d", e.ref("test/after:1"))
	left, _ := filepath.Glob(filepath.Join(kilnDir, "build-*"))
	if len(left) != 0 {
		t.Errorf("left after the next build: %q", left)
	}
	if shm, _ := filepath.Glob("/dev/shm/kiln-secrets-*"); len(shm) != 0 {
		for _, d := range shm {
			if grepTree(t, d, secret) != "" {
				t.Errorf("the killed build's secret is still in %s", d)
			}
		}
	}
}

// grepTree returns a file under dir that contains s, or "".
func grepTree(t *testing.T, dir, s string) string {
	t.Helper()
	found := ""
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || !info.Mode().IsRegular() || found != "" {
			return nil
		}
		if data, err := os.ReadFile(p); err == nil && bytes.Contains(data, []byte(s)) {
			found = p
		}
		return nil
	})
	return found
}

// syncBuffer is a buffer a process writes while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
