package sshagent

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

func writeKey(t *testing.T, passphrase string) (string, ssh.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "test key")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "test key", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return p, sshPub
}

// listKeys connects to the agent at socket and lists its keys.
func listKeys(t *testing.T, socket string) []*agent.Key {
	t.Helper()
	c, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	keys, err := agent.NewClient(c).List()
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestAgentFromKeysAndForwarding(t *testing.T) {
	keyFile, pub := writeKey(t, "")
	a, err := FromKeys([]string{keyFile})
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "ssh")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	upstream := filepath.Join(dir, "up.sock")
	open, err := a.Listen(upstream, os.Getuid(), os.Getgid(), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	keys := listKeys(t, upstream)
	if len(keys) != 1 || string(keys[0].Marshal()) != string(pub.Marshal()) {
		t.Fatalf("keys %v", keys)
	}
	if st, _ := os.Stat(upstream); st.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v", st.Mode())
	}

	// A second agent forwards to the first, as --ssh default does to
	// $SSH_AUTH_SOCK.
	fwd, err := FromSocket(upstream)
	if err != nil {
		t.Fatal(err)
	}
	inner := filepath.Join(dir, "run.sock")
	o2, err := fwd.Listen(inner, os.Getuid(), os.Getgid(), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if keys := listKeys(t, inner); len(keys) != 1 {
		t.Errorf("forwarded keys %v", keys)
	}
	if err := o2.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(inner); !os.IsNotExist(err) {
		t.Error("the socket outlived Close")
	}
	if _, err := FromSocket(keyFile); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("a key file as a socket: %v", err)
	}
}

func TestAgentRefusesProtectedKeys(t *testing.T) {
	keyFile, _ := writeKey(t, "secret")
	if _, err := FromKeys([]string{keyFile}); err == nil || !strings.Contains(err.Error(), "passphrase") {
		t.Errorf("err = %v", err)
	}
}
