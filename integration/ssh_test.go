package integration

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/kiln-build/kiln/internal/testutil"
)

// RUN --mount=type=ssh gets a socket at SSH_AUTH_SOCK, for the RUN only,
// whose keys never reach the image.
func TestRunSSHMount(t *testing.T) {
	testutil.RequireRoot(t, "RUN with chroot isolation")
	e := newEnv(t)
	base := pushBusybox(e)
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(block)
	keyFile := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := writeFiles(t, map[string]string{"Dockerfile": "FROM " + base + `
RUN --mount=type=ssh test -S "$SSH_AUTH_SOCK" && echo "$SSH_AUTH_SOCK" > /sock-path && ls -ln "$SSH_AUTH_SOCK" | cut -c1-10 > /sock-mode
RUN --mount=type=ssh,id=deploy,target=/k,mode=0666 test -S /k && echo ok > /second
`})
	dest := e.ref("test/ssh:1")
	out := e.build(dir, "-d", dest, "--ssh", "default="+keyFile, "--ssh", "deploy="+keyFile)
	fs := flatten(t, e.pull(dest))
	wantFile(t, fs, "/sock-path", "/run/buildkit/ssh_agent.0\n", 0o644, 0, 0)
	wantFile(t, fs, "/sock-mode", "srw-------\n", 0o644, 0, 0)
	wantFile(t, fs, "/second", "ok\n", 0o644, 0, 0)
	for _, p := range []string{"/run/buildkit/ssh_agent.0", "/k"} {
		if _, ok := fs[p]; ok {
			t.Errorf("%s is in the image", p)
		}
	}
	if strings.Contains(out, "PRIVATE KEY") {
		t.Error("the key is in the log")
	}
	for p, e := range fs {
		if strings.Contains(e.data, string(keyPEM[40:80])) {
			t.Errorf("the key is in %s", p)
		}
	}
}
