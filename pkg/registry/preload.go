package registry

import (
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// PreloadCredentials finds now the credentials of the repositories refs
// name, which runs the credential helpers they need: before the first RUN,
// which (with in-place isolation) could otherwise place a program of the
// same name where kiln would look for it later. Helpers' answers are kept
// for the rest of the build. A reference that does not parse, or a source
// that fails, is left to the operation that needs it to report.
func (c *Client) PreloadCredentials(refs []string) {
	for _, ref := range refs {
		r, err := name.ParseReference(ref, name.WeakValidation)
		if err != nil {
			continue
		}
		c.keychain.Resolve(r.Context())
	}
}

// credentialVars reports whether an environment variable holds registry
// credentials kiln reads: kiln's, kaniko's, GitLab's, DOCKER_AUTH_CONFIG.
func credentialVar(name string) bool {
	switch name {
	case dockerAuthConfigVar, "CI_REGISTRY_PASSWORD", "CI_DEPENDENCY_PROXY_PASSWORD", "CI_JOB_TOKEN":
		return true
	}
	if strings.HasPrefix(name, envCredentialPrefix) {
		return true
	}
	return strings.HasPrefix(name, kanikoCredentialPrefix) &&
		(strings.HasSuffix(name, "_PASSWORD") || strings.HasSuffix(name, "_USER"))
}

// ScrubCredentialEnv removes the credential variables from kiln's own
// environment once a Client has read them (New keeps its own copy), so
// that no process kiln starts later inherits them.
func ScrubCredentialEnv() {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); credentialVar(k) {
			os.Unsetenv(k)
		}
	}
}

// environSnapshot is the environment as it is now, for lookups after it
// has been scrubbed.
func environSnapshot() func(string) (string, bool) {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

// helperEnv is the environment of credential helpers: kiln's, without the
// credentials kiln was given for itself (cloud helpers need the rest:
// HOME, AWS_*, GOOGLE_*, proxies).
func helperEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !credentialVar(k) {
			out = append(out, kv)
		}
	}
	return out
}
