package integration

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
)

// TestRootlessBuild runs kiln as an unprivileged user, which makes it pick
// rootless isolation: it enters a user namespace (mapping subordinate ids
// from /etc/subuid and /etc/subgid with newuidmap), extracts with real
// ownership and runs RUN steps as other users. The test runs as root only to
// set the stage: the subordinate id files are bind-mounted over /etc in a
// private mount namespace, so this machine's files are not touched.
func TestRootlessBuild(t *testing.T) {
	testutil.RequireRoot(t, "to drop to an unprivileged user and provide /etc/subuid")
	for _, tool := range []string{"unshare", "setpriv", "newuidmap", "newgidmap"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found (Debian packages util-linux and uidmap)", tool)
		}
	}
	e := newEnv(t)
	base := pushBusybox(e)
	// Everything the unprivileged user reads must be reachable by it
	// (t.TempDir's parent is private).
	dir, err := os.MkdirTemp("", "kiln-rootless-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	kiln := filepath.Join(dir, "kiln")
	copyFile(t, e.kiln, kiln, 0o755)
	home := filepath.Join(dir, "home")
	ctx := filepath.Join(dir, "context")
	for _, d := range []string{home, ctx} {
		os.Mkdir(d, 0o755)
		os.Chown(d, 65534, 65534)
	}
	os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte(`FROM `+base+`
RUN echo hello > /hello && echo 'builder:x:1234:1234::/tmp:/bin/sh' >> /etc/passwd
RUN rm /bin/vi && chown 1234:1234 /hello
USER builder
RUN id > /tmp/as-user
`), 0o644)
	subids := filepath.Join(dir, "subids")
	os.WriteFile(subids, []byte("nobody:200000:65536\n"), 0o644)

	dest := e.ref("test/rootless:1")
	script := `set -e
mount --make-rprivate /
mount --bind "$SUBIDS" /etc/subuid
mount --bind "$SUBIDS" /etc/subgid
exec setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$HOME_DIR" \
  "$KILN" build --context "$CONTEXT" --destination "$DEST" --insecure-registry "$REGISTRY"`
	cmd := exec.Command("unshare", "--mount", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "SUBIDS="+subids, "HOME_DIR="+home, "KILN="+kiln, "CONTEXT="+ctx,
		"DEST="+dest, "REGISTRY="+e.reg.Host)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if strings.Contains(out.String(), "user namespaces are not permitted") {
			t.Skipf("this kernel does not permit unprivileged user namespaces:\n%s", out.String())
		}
		t.Fatalf("rootless build: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "Isolation rootless") {
		t.Errorf("expected rootless isolation:\n%s", out.String())
	}
	fs := flatten(t, e.pull(dest))
	wantFile(t, fs, "/hello", "hello\n", 0o644, 1234, 1234)
	wantFile(t, fs, "/tmp/as-user", "uid=1234(builder) gid=1234 groups=1234\n", 0o644, 1234, 1234)
	if _, ok := fs["/bin/vi"]; ok {
		t.Error("/bin/vi deleted by a RUN is still there")
	}
	// Ownership from the base image survived the extraction in the
	// namespace (busybox's /tmp is root's, mode 1777).
	if e := fs["/tmp"]; e.hdr == nil || e.hdr.Uid != 0 || e.hdr.Mode&0o7777 != 0o1777 {
		t.Errorf("/tmp: %+v", e.hdr)
	}
}
