package workdir

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStartCleansOnlyDeadBuilds(t *testing.T) {
	kilnDir, shm := t.TempDir(), t.TempDir()
	live, err := Start(kilnDir, WithMemoryDir(""))
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	// A dead build: its lock file is there but nobody holds it, and it
	// left a directory with a secret in it; another left a directory only.
	dead := filepath.Join(kilnDir, "build-123")
	os.MkdirAll(filepath.Join(dead, "secrets"), 0o700)
	os.WriteFile(filepath.Join(dead, "secrets", "s"), []byte("secret"), 0o600)
	os.WriteFile(dead+".lock", nil, 0o600)
	os.MkdirAll(filepath.Join(shm, "kiln-secrets-123"), 0o700)
	orphan := filepath.Join(kilnDir, "build-456")
	os.MkdirAll(orphan, 0o700)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(orphan, old, old)

	next, err := Start(kilnDir, WithMemoryDir(shm))
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	for _, p := range []string{dead, dead + ".lock", orphan, filepath.Join(shm, "kiln-secrets-123")} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s of a dead build is still there", p)
		}
	}
	// The live build's directory is untouched, however old.
	os.Chtimes(live.Dir, old, old)
	if _, err := Start(kilnDir, WithMemoryDir("")); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(live.Dir); err != nil || !st.IsDir() {
		t.Errorf("a live build's directory was removed: %v", err)
	}
	if err := live.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(live.Dir); !os.IsNotExist(err) {
		t.Error("Close left the build directory")
	}
}

func TestSecretsDirInMemory(t *testing.T) {
	if _, err := os.Stat("/dev/shm"); err != nil {
		t.Skip("no /dev/shm on this machine")
	}
	b, err := Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !strings.HasPrefix(b.SecretsDir, "/dev/shm/kiln-secrets-") {
		t.Skipf("/dev/shm is not a writable tmpfs here: secrets in %s", b.SecretsDir)
	}
	if st, err := os.Stat(b.SecretsDir); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("secrets dir %s: %v %v", b.SecretsDir, st.Mode(), err)
	}
	b.Close()
	if _, err := os.Lstat(b.SecretsDir); !os.IsNotExist(err) {
		t.Error("Close left the secrets dir")
	}
}

func TestLockExcludesAndWaits(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.lock")
	unlock, err := Lock(context.Background(), p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := TryLock(p); ok {
		t.Fatal("a held lock was taken again")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	waited := false
	if _, err := Lock(ctx, p, func() { waited = true }); err == nil || !waited {
		t.Fatalf("Lock on a held lock: %v (waited %v)", err, waited)
	}
	got := make(chan error)
	go func() {
		u, err := Lock(context.Background(), p, nil)
		if err == nil {
			u()
		}
		got <- err
	}()
	unlock()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}
