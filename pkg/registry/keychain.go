package registry

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/config/credentials"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sirupsen/logrus"
)

// DefaultDockerConfigPaths lists the docker config files searched for
// credentials, in order: $DOCKER_CONFIG/config.json (when set),
// /kiln/.docker/config.json, /kaniko/.docker/config.json (where kaniko's
// users mount it) and ~/.docker/config.json.
func DefaultDockerConfigPaths() []string {
	var paths []string
	if dir := os.Getenv("DOCKER_CONFIG"); dir != "" {
		paths = append(paths, filepath.Join(dir, "config.json"))
	}
	paths = append(paths, "/kiln/.docker/config.json", "/kaniko/.docker/config.json")
	if home, err := os.UserHomeDir(); err == nil {
		paths = append(paths, filepath.Join(home, ".docker", "config.json"))
	}
	return paths
}

// credentialSource is one place credentials come from.
type credentialSource interface {
	// lookup returns the credentials for registry (as
	// name.Registry.RegistryStr has it); ok is false when it has none.
	lookup(registry string) (cfg authn.AuthConfig, ok bool, err error)
	// String names the source for logs, never a secret.
	String() string
}

// keychain asks its sources in order; the first with credentials for a
// registry wins, anonymous access otherwise.
type keychain struct {
	log     logrus.FieldLogger
	sources []credentialSource
}

// newKeychain reads the docker config files at paths; missing ones are
// skipped, unreadable or malformed ones are errors.
func newKeychain(paths []string, log logrus.FieldLogger) (*keychain, error) {
	k := &keychain{log: log}
	seen := map[string]bool{}
	for _, p := range paths {
		p = filepath.Clean(p)
		if seen[p] {
			continue
		}
		seen[p] = true
		cf, err := loadDockerConfig(p)
		if errors.Is(err, fs.ErrNotExist) {
			log.Debugf("no docker config at %q", p)
			continue
		}
		if err != nil {
			return nil, err
		}
		k.sources = append(k.sources, dockerConfig{cf})
	}
	return k, nil
}

// Resolve implements authn.Keychain.
func (k *keychain) Resolve(res authn.Resource) (authn.Authenticator, error) {
	registry := res.RegistryStr()
	for _, src := range k.sources {
		cfg, ok, err := src.lookup(registry)
		if err != nil {
			return nil, fmt.Errorf("credentials for registry %q from %s: %w", registry, src, err)
		}
		if ok {
			k.log.Debugf("using credentials for registry %q from %s", registry, src)
			return authn.FromConfig(cfg), nil
		}
	}
	k.log.Debugf("no credentials for registry %q: accessing it anonymously", registry)
	return authn.Anonymous, nil
}

func loadDockerConfig(path string) (*configfile.ConfigFile, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("reading docker config: %w", err)
	}
	defer f.Close()
	cf := configfile.New(path)
	if err := cf.LoadFromReader(f); err != nil {
		return nil, fmt.Errorf("reading docker config %q: %w", path, err)
	}
	return cf, nil
}

// dockerConfig is a docker config.json's "auths". Keys may be a host,
// host:port or a URL; Docker Hub's is "https://index.docker.io/v1/", as
// `docker login` writes it. An entry without any secret (as a credential
// store leaves it) is no entry.
type dockerConfig struct {
	cf *configfile.ConfigFile
}

func (d dockerConfig) String() string {
	return fmt.Sprintf("docker config %q", d.cf.Filename)
}

func (d dockerConfig) lookup(registry string) (authn.AuthConfig, bool, error) {
	keys := []string{registry}
	if registry == name.DefaultRegistry {
		keys = []string{authn.DefaultAuthKey, name.DefaultRegistry, "docker.io"}
	}
	store := credentials.NewFileStore(d.cf) // matches URL keys by their host
	for _, key := range keys {
		ac, err := store.Get(key)
		if err != nil {
			return authn.AuthConfig{}, false, err
		}
		if ac.Username != "" || ac.Password != "" || ac.IdentityToken != "" || ac.RegistryToken != "" {
			return authn.AuthConfig{
				Username:      ac.Username,
				Password:      ac.Password,
				IdentityToken: ac.IdentityToken,
				RegistryToken: ac.RegistryToken,
			}, true, nil
		}
	}
	return authn.AuthConfig{}, false, nil
}
