package sandbox

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// ownLayout lays out kiln's files like the executor image does, in dir.
func ownLayout(t *testing.T, dir string) {
	t.Helper()
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	for p, content := range map[string]string{
		"kiln/executor":        string(self),
		"kiln/ssl/certs/a.pem": "CA a\n",
		"kiln/ssl/certs/b.pem": "CA b\n",
	} {
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("executor", filepath.Join(dir, "kiln/kiln")); err != nil {
		t.Fatal(err)
	}
}

func TestOwnFilesPutBack(t *testing.T) {
	dir := t.TempDir()
	ownLayout(t, dir)
	roots := []string{filepath.Join(dir, "kiln/executor"), filepath.Join(dir, "kiln/kiln"), filepath.Join(dir, "kiln/ssl")}
	mounted := filepath.Join(dir, "kiln/ssl/mounted")
	if err := os.Mkdir(mounted, 0o755); err != nil {
		t.Fatal(err)
	}
	own, err := recordOwnFiles(roots, []string{"/", mounted})
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := own.check(); err != nil || len(changed) > 0 {
		t.Fatalf("untouched files: changed %q, %v", changed, err)
	}
	// A file rewritten with its own content, and a mount point's content,
	// are no changes.
	if err := os.WriteFile(filepath.Join(dir, "kiln/ssl/certs/b.pem"), []byte("CA b\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mounted, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	p := func(rel string) string { return filepath.Join(dir, rel) }
	if err := os.Remove(p("kiln/executor")); err != nil {
		t.Fatal(err)
	}
	for _, step := range []error{
		os.WriteFile(p("kiln/executor"), []byte("#!/bin/sh\necho pwned\n"), 0o755),
		os.WriteFile(p("kiln/ssl/certs/a.pem"), []byte("attacker CA\n"), 0o644),
		os.WriteFile(p("kiln/ssl/certs/c.pem"), []byte("attacker CA\n"), 0o644),
		os.Remove(p("kiln/kiln")),
		os.Mkdir(p("kiln/kiln"), 0o755),
		os.Chmod(p("kiln/ssl/certs"), 0o777),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	changed, err := own.check()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{p("kiln/executor"), p("kiln/kiln"), p("kiln/ssl/certs"), p("kiln/ssl/certs/a.pem"), p("kiln/ssl/certs/c.pem")}
	if !slices.Equal(changed, want) {
		t.Errorf("changed %q, want %q", changed, want)
	}
	self, _ := os.ReadFile("/proc/self/exe")
	for rel, content := range map[string]string{"kiln/executor": string(self), "kiln/ssl/certs/a.pem": "CA a\n", "kiln/ssl/certs/b.pem": "CA b\n"} {
		if b, err := os.ReadFile(p(rel)); err != nil || string(b) != content {
			t.Errorf("%s: %.20q, %v; want it put back", rel, b, err)
		}
	}
	if target, err := os.Readlink(p("kiln/kiln")); err != nil || target != "executor" {
		t.Errorf("kiln/kiln: %q, %v", target, err)
	}
	if st, err := os.Stat(p("kiln/ssl/certs")); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("kiln/ssl/certs: %v, %v", st.Mode(), err)
	}
	if _, err := os.Lstat(p("kiln/ssl/certs/c.pem")); err == nil {
		t.Error("the added certificate is still there")
	}
	if changed, err := own.check(); err != nil || len(changed) > 0 {
		t.Errorf("after putting back: changed %q, %v", changed, err)
	}
}

func TestCheckKilnBinaries(t *testing.T) {
	dir := t.TempDir()
	ownLayout(t, dir)
	self, err := hashFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "kiln/executor")
	binaries := []string{exe, filepath.Join(dir, "kiln/kiln"), filepath.Join(dir, "kaniko/executor")}
	if err := checkKilnBinaries(exe, binaries, self); err != nil {
		t.Errorf("intact binaries: %v", err)
	}
	// /kiln/kiln replaced by another program.
	other := filepath.Join(dir, "kiln/kiln")
	if err := os.Remove(other); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	err = checkKilnBinaries(exe, binaries, self)
	if err == nil || !strings.Contains(err.Error(), `kiln's own binary "`+other+`" is not the kiln that is running`) {
		t.Errorf("a replaced binary: %v", err)
	}
	// A kiln started from elsewhere does not judge the image's files.
	if err := checkKilnBinaries("/usr/local/bin/kiln", binaries, self); err != nil {
		t.Errorf("kiln started from elsewhere: %v", err)
	}
}
