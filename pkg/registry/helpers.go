package registry

import (
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"sync"

	"github.com/docker/docker-credential-helpers/client"
	"github.com/docker/docker-credential-helpers/credentials"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/sirupsen/logrus"
)

// helperTokenUser is the user name with which a credential helper marks
// its secret as an identity (refresh) token, as docker does.
const helperTokenUser = "<token>"

func helperProgram(helper string) string {
	return "docker-credential-" + helper
}

// helperRunner runs docker-credential-<name> programs from PATH, once per
// helper and server: a build asks for the same registry many times. A
// helper is found in PATH once, the first time it is needed (which
// PreloadCredentials makes happen before any RUN), and runs without the
// credential variables kiln was given.
type helperRunner struct {
	log logrus.FieldLogger

	mu      sync.Mutex
	results map[string]helperResult
	paths   map[string]string // program → absolute path, "" when missing
}

type helperResult struct {
	auth authn.AuthConfig
	ok   bool
	err  error
}

func newHelperRunner(log logrus.FieldLogger) *helperRunner {
	return &helperRunner{log: log, results: map[string]helperResult{}, paths: map[string]string{}}
}

// get asks helper for serverURL's credentials. A helper that is not
// installed is skipped with a warning: a config.json copied from a
// workstation often names one ("desktop", "osxkeychain") that a build
// image cannot have, and anonymous access may be all the build needs.
func (h *helperRunner) get(helper, serverURL string) (authn.AuthConfig, bool, error) {
	key := helper + "\x00" + serverURL
	h.mu.Lock()
	defer h.mu.Unlock()
	if r, ok := h.results[key]; ok {
		return r.auth, r.ok, r.err
	}
	r := h.run(helper, serverURL)
	h.results[key] = r
	return r.auth, r.ok, r.err
}

func (h *helperRunner) run(helper, serverURL string) helperResult {
	program := helperProgram(helper)
	path, looked := h.paths[program]
	if !looked {
		if p, err := exec.LookPath(program); err == nil {
			path, _ = filepath.Abs(p)
		}
		h.paths[program] = path
	}
	if path == "" {
		h.log.Warnf("Credential helper %q is not installed (not in PATH): skipping it for %q", program, serverURL)
		return helperResult{}
	}
	creds, err := client.Get(helperCommand(path), serverURL)
	if credentials.IsErrCredentialsNotFound(err) {
		return helperResult{}
	}
	if err != nil {
		return helperResult{err: fmt.Errorf("credential helper %q for %q: %w", program, serverURL, err)}
	}
	if creds.Username == helperTokenUser {
		return helperResult{auth: authn.AuthConfig{IdentityToken: creds.Secret}, ok: true}
	}
	return helperResult{auth: authn.AuthConfig{Username: creds.Username, Password: creds.Secret}, ok: true}
}

// helperCommand runs the helper at path with helperEnv.
func helperCommand(path string) client.ProgramFunc {
	return func(args ...string) client.Program {
		cmd := exec.Command(path, args...)
		cmd.Env = helperEnv()
		return &helperProcess{cmd: cmd}
	}
}

// helperProcess is a client.Program over an exec.Cmd.
type helperProcess struct{ cmd *exec.Cmd }

func (p *helperProcess) Output() ([]byte, error) { return p.cmd.Output() }
func (p *helperProcess) Input(in io.Reader)      { p.cmd.Stdin = in }

// storeInHelper saves credentials for serverURL in helper, as docker login does
// when the config names one.
func storeInHelper(helper, serverURL string, auth authn.AuthConfig) error {
	program := helperProgram(helper)
	if _, err := exec.LookPath(program); err != nil {
		return fmt.Errorf("credential helper %q is not installed (not in PATH)", program)
	}
	c := &credentials.Credentials{ServerURL: serverURL, Username: auth.Username, Secret: auth.Password}
	if auth.IdentityToken != "" {
		c.Username, c.Secret = helperTokenUser, auth.IdentityToken
	}
	if c.Secret == "" {
		return errors.New("no secret to store")
	}
	if err := client.Store(client.NewShellProgramFunc(program), c); err != nil {
		return fmt.Errorf("credential helper %q: %w", program, err)
	}
	return nil
}
