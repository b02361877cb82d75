package registry

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

const (
	dockerAuthConfigVar = "DOCKER_AUTH_CONFIG"
	// dockerHubAuthKey is Docker Hub's key in "auths", as docker login
	// writes it.
	dockerHubAuthKey = authn.DefaultAuthKey
)

// dockerConfigFile is the part of a docker config.json (or a containers
// auth.json, or GitLab's DOCKER_AUTH_CONFIG) that holds credentials.
type dockerConfigFile struct {
	Auths       map[string]authEntry `json:"auths"`
	CredHelpers map[string]string    `json:"credHelpers"`
	CredsStore  string               `json:"credsStore"`
}

type authEntry struct {
	Auth          string `json:"auth,omitempty"`
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
	RegistryToken string `json:"registrytoken,omitempty"`
}

// dockerConfig is a parsed credential file. Keys of "auths" may be a host,
// host:port, a URL ("https://index.docker.io/v1/") or a registry with a
// path ("harbor.example.com/project"), which applies to the repositories
// under it and beats the bare host.
type dockerConfig struct {
	name        string            // `docker config "/kaniko/.docker/config.json"`
	keys        []authKey         // most specific first
	credHelpers map[string]string // normalized registry -> helper suffix
	credsStore  string
	helpers     *helperRunner
}

type authKey struct {
	key            string // as written in the file
	registry, path string
	auth           authn.AuthConfig
	err            error // why the entry cannot be used; nil if it can
}

// parseDockerConfig parses a docker config. source names it in messages
// (`docker config "/kaniko/.docker/config.json"`). Invalid JSON is an error
// naming the line and column; an entry that cannot be used (an "auth" that
// is not base64 of USER:PASSWORD) is kept and fails only the lookups it
// matches, so that a broken entry for a registry the build never contacts
// does no harm.
func parseDockerConfig(source string, data []byte, helpers *helperRunner) (*dockerConfig, error) {
	var f dockerConfigFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", source, jsonError(data, err))
	}
	d := &dockerConfig{name: source, credHelpers: map[string]string{}, credsStore: f.CredsStore, helpers: helpers}
	for key, e := range f.Auths {
		registry, path, err := parseAuthKey(key)
		if err != nil {
			// docker ignores keys it cannot use; so do we, visibly.
			helpers.log.Warnf("%s: ignoring key %q: %v", source, key, err)
			continue
		}
		auth, err := e.authConfig()
		if err != nil {
			helpers.log.Warnf("%s: key %q is unusable: %v", source, key, err)
		}
		d.keys = append(d.keys, authKey{key: key, registry: registry, path: path, auth: auth, err: err})
	}
	sort.Slice(d.keys, func(i, j int) bool {
		if len(d.keys[i].path) != len(d.keys[j].path) {
			return len(d.keys[i].path) > len(d.keys[j].path)
		}
		return d.keys[i].key < d.keys[j].key
	})
	for key, helper := range f.CredHelpers {
		registry, _, err := parseAuthKey(key)
		if err != nil {
			helpers.log.Warnf("%s: ignoring credHelpers key %q: %v", source, key, err)
			continue
		}
		d.credHelpers[registry] = helper
	}
	return d, nil
}

func (e authEntry) authConfig() (authn.AuthConfig, error) {
	cfg := authn.AuthConfig{
		Username:      e.Username,
		Password:      e.Password,
		IdentityToken: e.IdentityToken,
		RegistryToken: e.RegistryToken,
	}
	if e.Auth != "" {
		raw, err := base64.StdEncoding.DecodeString(e.Auth)
		if err != nil {
			return cfg, fmt.Errorf(`"auth" is not base64: %w`, err)
		}
		user, password, ok := strings.Cut(string(raw), ":")
		if !ok || user == "" {
			return cfg, errors.New(`"auth" is not base64 of "USER:PASSWORD"`)
		}
		cfg.Username, cfg.Password = user, password
	}
	return cfg, nil
}

// parseAuthKey splits an "auths" key into its normalized registry and
// path: "https://index.docker.io/v1/" is ("index.docker.io", ""),
// "harbor.example.com/team/" is ("harbor.example.com", "team").
func parseAuthKey(key string) (registry, path string, err error) {
	s := key
	if _, rest, ok := strings.Cut(s, "://"); ok {
		s = rest
	}
	host, path, _ := strings.Cut(s, "/")
	path = strings.Trim(path, "/")
	if path == "v1" || path == "v2" { // the API root of a URL key
		path = ""
	}
	registry, err = normalizeRegistry(host)
	return registry, path, err
}

// pathCovers reports whether a key's path applies to repository.
func pathCovers(path, repository string) bool {
	return path == "" || repository == path || strings.HasPrefix(repository, path+"/")
}

func hasSecret(a authn.AuthConfig) bool {
	return a.Username != "" || a.Password != "" || a.IdentityToken != "" || a.RegistryToken != ""
}

func (d *dockerConfig) lookup(t target) (credential, bool, error) {
	if helper, ok := d.credHelpers[t.registry]; ok {
		cred, ok, err := d.fromHelper(helper, "credHelpers", t)
		if err != nil || ok {
			return cred, ok, err
		}
	}
	for _, k := range d.keys {
		if k.registry != t.registry || !pathCovers(k.path, t.repository) {
			continue
		}
		if k.err != nil {
			return credential{}, false, fmt.Errorf("%s key %q: %w", d.name, k.key, k.err)
		}
		if hasSecret(k.auth) {
			return credential{auth: k.auth, from: fmt.Sprintf("%s key %q", d.name, k.key)}, true, nil
		}
	}
	if d.credsStore != "" {
		return d.fromHelper(d.credsStore, "credsStore", t)
	}
	return credential{}, false, nil
}

func (d *dockerConfig) fromHelper(helper, field string, t target) (credential, bool, error) {
	auth, ok, err := d.helpers.get(helper, helperServerURL(t.registry))
	if err != nil || !ok {
		return credential{}, false, err
	}
	return credential{auth: auth, from: fmt.Sprintf("credential helper %q (%s of %s)", helperProgram(helper), field, d.name)}, true, nil
}

// maxListed bounds the names a message lists.
const maxListed = 8

// searched says which keys were looked for and which the file has, so that
// a key spelled differently (another port, a stray space, a path) shows.
func (d *dockerConfig) searched(t target) string {
	var want []string
	if t.repository != "" {
		parts := strings.Split(t.repository, "/")
		for i := len(parts); i > 0; i-- {
			want = append(want, fmt.Sprintf("%q", t.registry+"/"+strings.Join(parts[:i], "/")))
		}
	}
	want = append(want, fmt.Sprintf("%q", t.registry))
	if t.registry == name.DefaultRegistry {
		want = append(want, fmt.Sprintf("%q", dockerHubAuthKey))
	}
	var have []string
	for _, k := range d.keys {
		have = append(have, fmt.Sprintf("%q", k.key))
	}
	sort.Strings(have)
	if len(have) > maxListed {
		have = append(have[:maxListed], fmt.Sprintf("and %d more", len(have)-maxListed))
	}
	s := fmt.Sprintf("%s: no key %s", d.name, orList(want))
	if len(have) == 0 {
		s += " (it has no \"auths\")"
	} else {
		s += " (it has " + strings.Join(have, ", ") + ")"
	}
	if helper, ok := d.credHelpers[t.registry]; ok {
		s += fmt.Sprintf(", and credential helper %q had none", helperProgram(helper))
	}
	if d.credsStore != "" {
		s += fmt.Sprintf(", and credential store %q had none", helperProgram(d.credsStore))
	}
	return s
}

// orList joins items as "a, b or c".
func orList(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}

// authKeyFor is the "auths" key docker login writes for registry (a
// normalized host, optionally with a path).
func authKeyFor(registry, path string) string {
	if registry == name.DefaultRegistry && path == "" {
		return dockerHubAuthKey
	}
	if path == "" {
		return registry
	}
	return registry + "/" + path
}

// helperServerURL is the server URL docker passes to credential helpers.
func helperServerURL(registry string) string {
	return authKeyFor(registry, "")
}
