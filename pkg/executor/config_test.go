package executor

import (
	"reflect"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

func TestExpandPorts(t *testing.T) {
	got, err := expandPorts([]string{"80", "53/UDP", "9000-9002", "8443/tcp", "127.0.0.1:8080:81", "82-82/sctp"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"80/tcp", "53/udp", "9000/tcp", "9001/tcp", "9002/tcp", "8443/tcp", "81/tcp", "82/sctp"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, bad := range []string{"http", "80/ftp", "9001-9000", "70000"} {
		if _, err := expandPorts([]string{bad}); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestValidateSignal(t *testing.T) {
	for _, ok := range []string{"SIGTERM", "TERM", "sigint", "9", "SIGRTMIN+3"} {
		if err := validateSignal(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	if err := validateSignal("SIGNOPE"); err == nil || !strings.Contains(err.Error(), `"SIGNOPE"`) {
		t.Errorf("SIGNOPE: %v", err)
	}
}

func TestSetEnvKeepsPosition(t *testing.T) {
	env := []string{"PATH=/bin", "A=1", "B=2"}
	got := setEnv(env, "A", "changed")
	if !reflect.DeepEqual(got, []string{"PATH=/bin", "A=changed", "B=2"}) {
		t.Errorf("replace: %q", got)
	}
	if got := setEnv(env, "C", "3"); got[len(got)-1] != "C=3" || len(env) != 3 {
		t.Errorf("append: %q (input changed: %q)", got, env)
	}
}

func TestResolveWorkdir(t *testing.T) {
	for _, c := range []struct{ cur, p, want string }{
		{"", "app", "/app"}, {"/app", "sub/../src", "/app/src"}, {"/app", "/abs", "/abs"}, {"/a", ".", "/a"},
		{"/app", "/w/", "/w/"}, {"/w/", "sub/", "/w/sub"},
	} {
		if got := resolveWorkdir(c.cur, c.p); got != c.want {
			t.Errorf("WORKDIR %q from %q = %q, want %q", c.p, c.cur, got, c.want)
		}
	}
}

func parseOne(t *testing.T, line string) instructions.Command {
	t.Helper()
	res, err := parser.Parse(strings.NewReader(line + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := instructions.ParseCommand(res.AST.Children[0])
	if err != nil {
		t.Fatal(err)
	}
	return cmd
}

func TestCreatedBy(t *testing.T) {
	for line, want := range map[string]string{
		`ENV A=1 B=2`:            "ENV A=1 B=2",
		`CMD ["app", "--flag"]`:  `CMD ["app" "--flag"]`,
		`EXPOSE 8080 53/udp`:     "EXPOSE 53/udp 8080",
		`ARG TOKEN=secret-value`: "ARG TOKEN",
		`USER app:app`:           "USER app:app",
		`COPY --chown=1 a /b`:    "COPY --chown=1 a /b",
	} {
		if got := createdBy(parseOne(t, line)); got != want {
			t.Errorf("%s: %q, want %q", line, got, want)
		}
	}
}
