package integration

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
)

// A failed RUN's exit status is kiln's, as kaniko and buildah pass it on.
func TestFailedRunExitStatus(t *testing.T) {
	testutil.RequireRoot(t, "RUN with chroot isolation")
	e := newEnv(t)
	base := pushBusybox(e)
	dir := writeFiles(t, map[string]string{"Dockerfile": "FROM " + base + "\nRUN echo about to fail && exit 7\n"})
	r := e.tryBuild(dir, "--no-push")
	var exit *exec.ExitError
	if !errors.As(r.err, &exit) || exit.ExitCode() != 7 {
		t.Fatalf("kiln ended with %v, want exit status 7\n%s", r.err, r.out)
	}
	if !strings.Contains(r.out, "exited with code 7") {
		t.Errorf("the error does not say how RUN failed:\n%s", r.out)
	}
}

// USER root in a stage without /etc/passwd runs as uid 0, gid 0, as in
// Docker; another name fails and says why.
func TestUserRootWithoutPasswd(t *testing.T) {
	testutil.RequireRoot(t, "RUN with chroot isolation")
	e := newEnv(t)
	base := pushBusybox(e)
	for _, user := range []string{"root", "root:root"} {
		dir := writeFiles(t, map[string]string{"Dockerfile": "FROM " + base + " AS bb\nFROM scratch\nCOPY --from=bb /bin/busybox /bin/busybox\nUSER " + user + `
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox id -u > /ids && /bin/busybox id -g >> /ids"]
`})
		dest := e.ref("test/user-root:" + strings.ReplaceAll(user, ":", "-"))
		e.build(dir, "-d", dest)
		img := e.pull(dest)
		wantFile(t, flatten(t, img), "/ids", "0\n0\n", 0o644, 0, 0)
		if u := config(t, img).Config.User; u != user {
			t.Errorf("USER %s: the config says %q", user, u)
		}
	}
	dir := writeFiles(t, map[string]string{"Dockerfile": "FROM " + base + " AS bb\nFROM scratch\nCOPY --from=bb /bin/busybox /bin/busybox\nUSER app\nRUN [\"/bin/busybox\", \"true\"]\n"})
	r := e.tryBuild(dir, "--no-push")
	wantOutput(t, r, false, `unable to find user "app"`, "/etc/passwd is missing or empty")
}

// An ARG's name is expanded like its value, before FROM and in a stage.
func TestArgNameExpanded(t *testing.T) {
	e := newEnv(t)
	base := pushBase(e)
	dir := writeFiles(t, map[string]string{"Dockerfile": `ARG which=BASE
ARG ${which}_IMAGE=` + base + `
FROM ${BASE_IMAGE}
ARG tool=NODE
ARG ${tool}_VERSION=18
LABEL node-version=${NODE_VERSION}
`})
	dest := e.ref("test/arg-name:1")
	r := e.tryBuild(dir, "-d", dest, "--build-arg", "NODE_VERSION=22")
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.out)
	}
	if strings.Contains(r.out, "Build arguments not consumed") {
		t.Errorf("the build argument for an expanded name is reported unused:\n%s", r.out)
	}
	cf := config(t, e.pull(dest))
	if got := cf.Config.Labels["node-version"]; got != "22" {
		t.Errorf("label node-version = %q, want the build argument 22", got)
	}
	found := false
	for _, h := range cf.History {
		found = found || h.CreatedBy == "ARG NODE_VERSION"
	}
	if !found {
		t.Errorf("no history entry ARG NODE_VERSION: %+v", cf.History)
	}
}
