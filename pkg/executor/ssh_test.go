package executor

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/kiln-build/kiln/pkg/sandbox"
	"github.com/kiln-build/kiln/pkg/sshagent"
)

func TestRunSSHMount(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := sshagent.FromKeys([]string{keyFile})
	if err != nil {
		t.Fatal(err)
	}
	// A short secrets dir: socket paths are limited.
	secrets, err := os.MkdirTemp("", "s")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(secrets)

	tb := newTestBuild(t, "FROM base\nRUN --mount=type=ssh --mount=type=ssh,id=deploy,target=/k,required=false write /done 1\n", "", nil).
		with(WithSSH(map[string]*sshagent.Agent{"default": a}), WithSecretsDir(secrets))
	b := tb.builder()
	var keys []*agent.Key
	var env []string
	var mounts []sandbox.Mount
	b.opts.sandbox = &hookSandbox{scriptSandbox: tb.sandbox, before: func(spec *sandbox.Spec) {
		env, mounts = spec.Env, spec.Mounts
		for _, m := range spec.Mounts {
			if m.Target != "/run/buildkit/ssh_agent.0" {
				continue
			}
			c, err := net.Dial("unix", m.Source)
			if err != nil {
				t.Error(err)
				return
			}
			keys, err = agent.NewClient(c).List()
			c.Close()
			if err != nil {
				t.Error(err)
			}
		}
	}}
	img, err := tb.runErr(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || !slices.Contains(env, "SSH_AUTH_SOCK=/run/buildkit/ssh_agent.0") || len(mounts) != 1 {
		t.Errorf("keys %v, env %q, mounts %+v (the optional mount of an unknown agent is skipped)", keys, env, mounts)
	}
	if _, ok := flatten(t, img)["/run/buildkit/ssh_agent.0"]; ok {
		t.Error("the socket is in the image")
	}
	if left, _ := os.ReadDir(secrets); len(left) != 0 {
		t.Errorf("left in the secrets dir: %v", left)
	}

	tb = newTestBuild(t, "FROM base\nRUN --mount=type=ssh,id=deploy,required=true true\n", "", nil)
	if _, err := tb.runErr(tb.builder()); err == nil || !strings.Contains(err.Error(), `SSH agent "deploy" is required`) {
		t.Errorf("required agent missing: %v", err)
	}
}
