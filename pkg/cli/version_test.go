package cli

import (
	"bytes"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// stamp sets the link-time variables for one test, as -ldflags -X does.
func stamp(t *testing.T, version, commit, date string) {
	t.Helper()
	old := [3]string{Version, Commit, BuildDate}
	Version, Commit, BuildDate = version, commit, date
	t.Cleanup(func() { Version, Commit, BuildDate = old[0], old[1], old[2] })
}

// run runs kiln's command tree with args as os.Args and returns its output.
func runKiln(t *testing.T, args ...string) string {
	t.Helper()
	root := NewRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(commandArgs(args))
	if err := root.Execute(); err != nil {
		t.Fatalf("%q: %v\n%s", args, err, out.String())
	}
	return out.String()
}

func TestVersionOutput(t *testing.T) {
	const (
		version = "v1.2.3-4-gabcdef0"
		commit  = "abcdef0123456789abcdef0123456789abcdef01"
		date    = "2025-05-06T07:08:09Z"
	)
	stamp(t, version, commit, date)
	want := []string{
		"kiln " + version,
		"commit:     " + commit,
		"build date: " + date,
		"go:         " + runtime.Version(),
		"platform:   " + runtime.GOOS + "/" + runtime.GOARCH,
	}
	for _, args := range [][]string{
		{"kiln", "version"},
		{"kiln", "--version"},
		{"/usr/local/bin/kiln", "-v", "debug", "version"},
		{"/kiln/executor", "version"},
		{"/kaniko/executor", "--version"},
	} {
		out := runKiln(t, args...)
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			lines = append(lines, strings.TrimSpace(l))
		}
		if !slices.Equal(lines, want) {
			t.Errorf("%q printed\n%s\nwant\n%s", args, out, strings.Join(want, "\n"))
		}
	}
	if out := runKiln(t, "kiln", "version", "--short"); out != version+"\n" {
		t.Errorf("version --short: %q, want %q", out, version+"\n")
	}
}

// TestVersionUnstamped: a binary built without -ldflags says so instead of
// printing empty values.
func TestVersionUnstamped(t *testing.T) {
	stamp(t, "dev", "", "")
	info := currentBuildInfo()
	// A test binary carries no VCS information.
	if info.Version != "dev" || info.Commit != "unknown" || info.BuildDate != "unknown" {
		t.Errorf("unstamped: %+v", info)
	}
}

// TestExecutorArgs: run as kaniko's "executor", arguments are those of
// `kiln build` unless they ask for the version.
func TestExecutorArgs(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"/kiln/executor", "--context", "."}, []string{"build", "--context", "."}},
		{[]string{"executor"}, []string{"build"}},
		{[]string{"/kaniko/executor", "version"}, []string{"version"}},
		{[]string{"/kaniko/executor", "--version"}, []string{"--version"}},
		{[]string{"/kiln/executor", "-d", "x", "version"}, []string{"build", "-d", "x", "version"}},
		{[]string{"kiln", "--version"}, []string{"--version"}},
		{[]string{"kiln", "build", "-c", "."}, []string{"build", "-c", "."}},
	} {
		if got := commandArgs(c.args); !slices.Equal(got, c.want) {
			t.Errorf("%q: %q, want %q", c.args, got, c.want)
		}
	}
}
