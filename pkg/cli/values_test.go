package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseBuildArgs(t *testing.T) {
	t.Setenv("FROM_ENV", "env value")
	os.Unsetenv("NOT_SET")
	got, err := parseBuildArgs([]string{"A=1", "B=", "C=x=y", "FROM_ENV", "NOT_SET"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"A": "1", "B": "", "C": "x=y", "FROM_ENV": "env value"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if _, err := parseBuildArgs([]string{"=x"}); err == nil || !strings.Contains(err.Error(), `"=x"`) {
		t.Errorf("empty name: %v", err)
	}
}

func TestParseSecrets(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	os.WriteFile(file, []byte("from-file"), 0o600)
	t.Setenv("TOKEN_VAR", "from-env")
	got, err := parseSecrets([]string{"id=a,src=" + file, "id=b,env=TOKEN_VAR", "id=c,source=" + file})
	if err != nil {
		t.Fatal(err)
	}
	if string(got["a"]) != "from-file" || string(got["b"]) != "from-env" || string(got["c"]) != "from-file" {
		t.Errorf("secrets %q", got)
	}
	for _, bad := range []string{"src=" + file, "id=x", "id=x,env=UNSET_VARIABLE_KILN", "id=x,src=/does/not/exist", "nonsense"} {
		if _, err := parseSecrets([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		} else if strings.Contains(err.Error(), "from-file") {
			t.Errorf("an error shows a secret: %v", err)
		}
	}
}

func TestParsePlatform(t *testing.T) {
	p, err := parsePlatform("linux/arm64/v8")
	if err != nil || p.OS != "linux" || p.Architecture != "arm64" || p.Variant != "v8" {
		t.Errorf("linux/arm64/v8: %+v, %v", p, err)
	}
	if _, err := parsePlatform("arm64"); err == nil || !strings.Contains(err.Error(), `"arm64"`) {
		t.Errorf("arm64 alone: %v", err)
	}
}

func TestReproducibleEpoch(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "")
	if e, err := reproducibleEpoch(); err != nil || !e.Equal(time.Unix(0, 0)) {
		t.Errorf("default: %v, %v", e, err)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	if e, err := reproducibleEpoch(); err != nil || !e.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("set: %v, %v", e, err)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	if _, err := reproducibleEpoch(); err == nil || !strings.Contains(err.Error(), `"yesterday"`) {
		t.Errorf("invalid: %v", err)
	}
}

func TestGitOptions(t *testing.T) {
	t.Setenv("GIT_TOKEN", "tok")
	t.Setenv("GIT_USERNAME", "")
	t.Setenv("GIT_PASSWORD", "")
	t.Setenv("GIT_PULL_METHOD", "")
	g, err := gitOptions([]string{"branch=main,single-branch=false", "depth=0", "recurse-submodules=true", "insecure-skip-tls=true"})
	if err != nil {
		t.Fatal(err)
	}
	if g.Branch != "main" || !g.AllBranches || g.Depth != -1 || !g.RecurseSubmodules || !g.InsecureSkipTLS || g.Token != "tok" {
		t.Errorf("options %+v", g)
	}
	for _, bad := range []string{"branch", "color=red", "depth=-2", "single-branch=maybe"} {
		if _, err := gitOptions([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
