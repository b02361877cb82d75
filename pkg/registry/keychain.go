package registry

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sirupsen/logrus"
)

// DockerConfigPaths lists the credential files searched, in order:
// dockerConfig (--docker-config: a directory holding config.json, or a
// .json file) or else $DOCKER_CONFIG/config.json, then
// /kiln/.docker/config.json, /kaniko/.docker/config.json (where kaniko's
// users mount it), ~/.docker/config.json and $REGISTRY_AUTH_FILE (the
// containers auth.json of podman and skopeo). Missing files are skipped.
func DockerConfigPaths(dockerConfig string) []string {
	if dockerConfig == "" {
		dockerConfig = os.Getenv("DOCKER_CONFIG")
	}
	var paths []string
	if dockerConfig != "" {
		paths = append(paths, configFile(dockerConfig))
	}
	paths = append(paths, "/kiln/.docker/config.json", "/kaniko/.docker/config.json")
	if home, err := os.UserHomeDir(); err == nil {
		paths = append(paths, filepath.Join(home, ".docker", "config.json"))
	}
	if f := os.Getenv("REGISTRY_AUTH_FILE"); f != "" {
		paths = append(paths, f)
	}
	return paths
}

// LoginConfigPath is the config.json that `kiln login` writes, as docker
// login chooses it: dockerConfig (a directory or a .json file), else
// $DOCKER_CONFIG/config.json, else ~/.docker/config.json.
func LoginConfigPath(dockerConfig string) (string, error) {
	if dockerConfig == "" {
		dockerConfig = os.Getenv("DOCKER_CONFIG")
	}
	if dockerConfig != "" {
		return configFile(dockerConfig), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the docker config directory: %w (set DOCKER_CONFIG or --docker-config)", err)
	}
	return filepath.Join(home, ".docker", "config.json"), nil
}

func configFile(p string) string {
	if strings.HasSuffix(p, ".json") {
		return p
	}
	return filepath.Join(p, "config.json")
}

// target is what credentials are looked up for: a registry and, for
// path-scoped keys ("harbor.example.com/project"), a repository in it.
type target struct {
	registry   string // normalized: "index.docker.io", "harbor.example.com:8443"
	repository string // "team/app"; "" when only the registry is known
}

func targetOf(res authn.Resource) target {
	t := target{registry: strings.ToLower(res.RegistryStr())}
	if repo, ok := res.(name.Repository); ok {
		t.repository = repo.RepositoryStr()
	}
	return t
}

func (t target) String() string {
	if t.repository == "" {
		return t.registry
	}
	return t.registry + "/" + t.repository
}

// credential is what a source found for a target.
type credential struct {
	auth authn.AuthConfig
	// from names the source and the key that matched, for logs and
	// errors; never a secret.
	from string
}

// credentialSource is one place credentials come from.
type credentialSource interface {
	// lookup returns the credentials for t; ok is false when the source
	// has none.
	lookup(t target) (cred credential, ok bool, err error)
	// searched says what the source looked for, for the error that
	// follows when no source had credentials.
	searched(t target) string
}

// keychain asks its sources in order; the first with credentials for a
// target wins, anonymous access otherwise. It logs, once per registry and
// source, which source won.
type keychain struct {
	log     logrus.FieldLogger
	sources []credentialSource

	mu     sync.Mutex
	logged map[string]bool
}

// newKeychain reads the credential sources, in the order they are asked:
// the KILN_REGISTRY_* variables, the docker config files at paths (missing
// ones skipped, unreadable ones skipped with a warning, malformed ones an
// error), DOCKER_AUTH_CONFIG and GitLab's CI variables.
func newKeychain(paths []string, env func(string) (string, bool), log logrus.FieldLogger) (*keychain, error) {
	helpers := newHelperRunner(log)
	k := &keychain{log: log, logged: map[string]bool{}}
	k.sources = append(k.sources, envCredentials{env: env})
	seen := map[string]bool{}
	for _, p := range paths {
		p = filepath.Clean(p)
		if seen[p] {
			continue
		}
		seen[p] = true
		cf, err := loadDockerConfig(p, helpers)
		if errors.Is(err, fs.ErrPermission) {
			// A non-root build in an image whose HOME is /root: the
			// file is not this user's to read, and not an error.
			log.Warnf("Skipping docker config %q: %v", p, err)
			continue
		}
		if err != nil {
			return nil, err
		}
		if cf == nil {
			log.Debugf("no docker config at %q", p)
			continue
		}
		k.sources = append(k.sources, cf)
	}
	if v, ok := env(dockerAuthConfigVar); ok && v != "" {
		cf, err := parseDockerConfig("environment variable "+dockerAuthConfigVar, []byte(v), helpers)
		if err != nil {
			return nil, err
		}
		k.sources = append(k.sources, cf)
	}
	k.sources = append(k.sources, gitlabCredentials{env: env})
	return k, nil
}

// Resolve implements authn.Keychain.
func (k *keychain) Resolve(res authn.Resource) (authn.Authenticator, error) {
	t := targetOf(res)
	cred, ok, err := k.find(t)
	if err != nil {
		return nil, err
	}
	k.logChoice(t, cred, ok)
	if !ok {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(cred.auth), nil
}

func (k *keychain) find(t target) (credential, bool, error) {
	for _, src := range k.sources {
		cred, ok, err := src.lookup(t)
		if err != nil {
			return credential{}, false, fmt.Errorf("credentials for %q: %w", t.String(), err)
		}
		if ok {
			return cred, true, nil
		}
	}
	return credential{}, false, nil
}

func (k *keychain) logChoice(t target, cred credential, ok bool) {
	key := t.registry + "\x00" + cred.from
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.logged[key] {
		return
	}
	k.logged[key] = true
	if ok {
		k.log.Infof("Registry %q: using credentials from %s", t.registry, cred.from)
	} else {
		k.log.Infof("Registry %q: no credentials found, accessing it anonymously", t.registry)
	}
}

// describe says which credentials are used for t, or where none were
// found, for error messages.
func (k *keychain) describe(t target) (text string, anonymous bool) {
	cred, ok, err := k.find(t)
	switch {
	case err != nil:
		return fmt.Sprintf("credentials unavailable (%v)", err), false
	case ok:
		return "credentials from " + cred.from, false
	}
	var searched []string
	for _, src := range k.sources {
		if s := src.searched(t); s != "" {
			searched = append(searched, s)
		}
	}
	return "no credentials (searched " + strings.Join(searched, "; ") + ")", true
}
