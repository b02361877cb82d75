package sshagent

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// maxKeySize bounds a private key file.
const maxKeySize = 1 << 20

// Agent is an SSH agent RUN commands may use.
type Agent struct {
	upstream string      // an agent socket to forward to, or
	keyring  agent.Agent // keys held in memory
	name     string      // for errors: the socket or the key files
}

// FromSocket forwards to the agent listening on the unix socket path.
func FromSocket(path string) (*Agent, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("SSH agent socket %q: %w", path, err)
	}
	if st.Mode()&os.ModeSocket == 0 {
		return nil, fmt.Errorf("SSH agent socket %q is not a socket", path)
	}
	return &Agent{upstream: path, name: path}, nil
}

// FromKeys serves the private keys in the files paths (PEM or OpenSSH
// format, without a passphrase).
func FromKeys(paths []string) (*Agent, error) {
	ring := agent.NewKeyring()
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("SSH key %q: %w", p, err)
		}
		data, err := io.ReadAll(io.LimitReader(f, maxKeySize+1))
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("SSH key %q: %w", p, err)
		}
		if len(data) > maxKeySize {
			return nil, fmt.Errorf("SSH key %q is larger than %d bytes", p, maxKeySize)
		}
		key, err := ssh.ParseRawPrivateKey(data)
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, fmt.Errorf("SSH key %q is protected by a passphrase: load it into an agent and give --ssh ID=$SSH_AUTH_SOCK", p)
		}
		if err != nil {
			return nil, fmt.Errorf("SSH key %q: %w", p, err)
		}
		if err := ring.Add(agent.AddedKey{PrivateKey: key, Comment: p}); err != nil {
			return nil, fmt.Errorf("SSH key %q: %w", p, err)
		}
	}
	return &Agent{keyring: ring, name: fmt.Sprintf("%q", paths)}, nil
}

// Open is a socket of the agent at path, which exists until Close.
type Open struct {
	ln    net.Listener
	path  string
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]bool
}

// Listen serves the agent on a new unix socket at path, owned by uid:gid
// with mode perm: a RUN as another user reaches it only if the mount says
// so.
func (a *Agent) Listen(path string, uid, gid int, perm os.FileMode) (*Open, error) {
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("SSH agent socket: %w", err)
	}
	o := &Open{ln: ln, path: path, conns: map[net.Conn]bool{}}
	if err := os.Chmod(path, perm); err != nil {
		o.Close()
		return nil, err
	}
	if err := os.Lchown(path, uid, gid); err != nil && !errors.Is(err, os.ErrPermission) {
		o.Close()
		return nil, err
	}
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			o.track(c, true)
			o.wg.Add(1)
			go func() {
				defer o.wg.Done()
				defer o.track(c, false)
				a.serve(c)
			}()
		}
	}()
	return o, nil
}

func (o *Open) track(c net.Conn, add bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if add {
		o.conns[c] = true
	} else {
		delete(o.conns, c)
		c.Close()
	}
}

// serve answers one client: through the keyring, or by relaying to the
// upstream agent.
func (a *Agent) serve(c net.Conn) {
	if a.keyring != nil {
		agent.ServeAgent(a.keyring, c)
		return
	}
	up, err := net.Dial("unix", a.upstream)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
}

// Close stops serving, ends the connections and removes the socket.
func (o *Open) Close() error {
	err := o.ln.Close()
	o.mu.Lock()
	for c := range o.conns {
		c.Close()
	}
	o.mu.Unlock()
	o.wg.Wait()
	if rerr := os.Remove(o.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
		err = rerr
	}
	return err
}

func (a *Agent) String() string { return a.name }
