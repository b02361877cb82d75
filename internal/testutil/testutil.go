package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// RequireRoot skips t unless it runs as root, saying why.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("needs root (%s); CI runs the tests as root", why)
	}
}

// RequireFile skips t unless path exists, naming the Debian package that
// provides it.
func RequireFile(t testing.TB, path, pkg string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Skipf("%s not found: install the Debian package %s (make test-deps does)", path, pkg)
	}
}

var (
	buildOnce sync.Once
	binary    string
	buildDir  string
	buildErr  error
)

// Kiln returns the path of a kiln binary built from this checkout once per
// test process (KILN_BINARY overrides it, e.g. to test bin/kiln).
func Kiln(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if p := os.Getenv("KILN_BINARY"); p != "" {
			binary, buildErr = filepath.Abs(p)
			return
		}
		dir, err := os.MkdirTemp("", "kiln-test-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildDir = dir
		binary = filepath.Join(dir, "kiln")
		cmd := exec.Command("go", "build", "-o", binary, "./cmd/kiln")
		cmd.Dir = RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = &buildError{out: string(out), err: err}
		}
	})
	if buildErr != nil {
		t.Fatalf("building kiln: %v", buildErr)
	}
	return binary
}

// Cleanup removes the binary Kiln built; call it from TestMain after the
// tests ran.
func Cleanup() {
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

// RepoRoot is the root of this checkout.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}
