package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadDockerfileNeverShowsHostFiles: a Dockerfile in the context that
// links to a credential file on the host is not read; one given outside the
// context that is not a Dockerfile is read but never quoted.
func TestReadDockerfileNeverShowsHostFiles(t *testing.T) {
	host := t.TempDir()
	config := filepath.Join(host, "config.json")
	secret := `{"auths":{"harbor.example.com":{"auth":"cm9ib3Q6aHVudGVyMg=="}}}`
	if err := os.WriteFile(config, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctxDir := t.TempDir()
	if err := os.Symlink(config, filepath.Join(ctxDir, "Dockerfile")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"Dockerfile", filepath.Join(ctxDir, "Dockerfile"), config} {
		_, _, err := readDockerfile(context.Background(), name, ctxDir)
		if err == nil {
			t.Errorf("readDockerfile(%q) parsed a docker config", name)
			continue
		}
		if strings.Contains(err.Error(), "cm9ib3Q6") || strings.Contains(err.Error(), "harbor.example.com") {
			t.Errorf("readDockerfile(%q): the error shows the host file: %v", name, err)
		}
	}
}

func TestReadDockerfileParses(t *testing.T) {
	ctxDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(ctxDir, "Containerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	df, p, err := readDockerfile(context.Background(), "Containerfile", ctxDir)
	if err != nil || len(df.Stages) != 1 || df.Filename != "Containerfile" || p != filepath.Join(ctxDir, "Containerfile") {
		t.Errorf("readDockerfile = %v, %q, %v", df, p, err)
	}
}
