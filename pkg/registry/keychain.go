package registry

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sirupsen/logrus"
)

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
// the KILN_REGISTRY_* variables, the docker config files at places,
// DOCKER_AUTH_CONFIG and GitLab's CI variables. Nothing here fails: a file
// that is missing, unreadable or invalid is logged and kept as a reason,
// listed if a registry needs credentials none of the sources has, since a
// registry the build never contacts is no reason to fail. notes say why
// $DOCKER_CONFIG or --docker-config gave no place.
func newKeychain(places []configPlace, notes []string, env func(string) (string, bool), log logrus.FieldLogger) *keychain {
	helpers := newHelperRunner(log)
	k := &keychain{log: log, logged: map[string]bool{}}
	k.sources = append(k.sources, envCredentials{env: env})
	for _, n := range notes {
		k.sources = append(k.sources, unusableConfig{why: n})
	}
	seen := map[string]bool{}
	for _, p := range places {
		p.path = filepath.Clean(p.path)
		if seen[p.path] {
			continue
		}
		seen[p.path] = true
		k.sources = append(k.sources, loadPlace(p, helpers))
	}
	const dacSource = "environment variable " + dockerAuthConfigVar
	if v, ok := env(dockerAuthConfigVar); ok && v != "" {
		cf, err := parseDockerConfig(dacSource, []byte(v), helpers)
		if err != nil {
			log.Warnf("Skipping %v", err)
			k.sources = append(k.sources, unusableConfig{why: err.Error()})
		} else {
			k.sources = append(k.sources, cf)
		}
	} else {
		k.sources = append(k.sources, unusableConfig{why: dacSource + " is not set"})
	}
	k.sources = append(k.sources, gitlabCredentials{env: env})
	return k
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
