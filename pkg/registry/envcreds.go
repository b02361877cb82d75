package registry

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

const (
	envCredentialPrefix    = "KILN_REGISTRY_"
	kanikoCredentialPrefix = "KANIKO_"
)

// CredentialEnvVars names the environment variables that hold the user and
// password for registry ("host" or "host:port"): KILN_REGISTRY_<HOST>_USER
// and KILN_REGISTRY_<HOST>_PASSWORD, where <HOST> is the registry in upper
// case with every character other than a letter or digit replaced by "_".
// "harbor.example.com:8443" gives KILN_REGISTRY_HARBOR_EXAMPLE_COM_8443_USER;
// Docker Hub is DOCKER_IO.
func CredentialEnvVars(registry string) (user, password string) {
	if r, err := normalizeRegistry(registry); err == nil {
		registry = r
	}
	if registry == name.DefaultRegistry {
		registry = "docker.io"
	}
	var b strings.Builder
	b.WriteString(envCredentialPrefix)
	for _, r := range strings.ToUpper(registry) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	prefix := b.String()
	return prefix + "_USER", prefix + "_PASSWORD"
}

// envCredentials are the KILN_REGISTRY_<HOST>_USER and _PASSWORD variables,
// for CI systems that hand out secrets as environment variables.
type envCredentials struct {
	env func(string) (string, bool)
}

func (e envCredentials) lookup(t target) (credential, bool, error) {
	userVar, passwordVar := CredentialEnvVars(t.registry)
	if _, ok := e.env(userVar); !ok {
		if _, ok := e.env(passwordVar); !ok {
			// The maintained kaniko fork's names, the same without
			// "REGISTRY_": KANIKO_<HOST>_USER and _PASSWORD.
			k := strings.Replace(userVar, envCredentialPrefix, kanikoCredentialPrefix, 1)
			if _, ok := e.env(k); ok {
				userVar, passwordVar = k, strings.Replace(passwordVar, envCredentialPrefix, kanikoCredentialPrefix, 1)
			}
		}
	}
	user, hasUser := e.env(userVar)
	password, hasPassword := e.env(passwordVar)
	switch {
	case !hasUser && !hasPassword:
		return credential{}, false, nil
	case !hasUser:
		return credential{}, false, fmt.Errorf("%s is set but %s is not", passwordVar, userVar)
	case !hasPassword:
		return credential{}, false, fmt.Errorf("%s is set but %s is not", userVar, passwordVar)
	}
	return credential{
		auth: authn.AuthConfig{Username: user, Password: password},
		from: fmt.Sprintf("environment variables %s and %s", userVar, passwordVar),
	}, true, nil
}

func (e envCredentials) searched(t target) string {
	userVar, passwordVar := CredentialEnvVars(t.registry)
	return fmt.Sprintf("environment variables %s and %s: not set", userVar, passwordVar)
}

// gitlabVariables are the credentials GitLab CI gives every job: for the
// project's container registry and for the dependency proxy.
var gitlabVariables = []struct{ server, user, password string }{
	{"CI_REGISTRY", "CI_REGISTRY_USER", "CI_REGISTRY_PASSWORD"},
	{"CI_DEPENDENCY_PROXY_SERVER", "CI_DEPENDENCY_PROXY_USER", "CI_DEPENDENCY_PROXY_PASSWORD"},
}

type gitlabCredentials struct {
	env func(string) (string, bool)
}

func (g gitlabCredentials) lookup(t target) (credential, bool, error) {
	for _, v := range gitlabVariables {
		server, _ := g.env(v.server)
		if server == "" {
			continue
		}
		registry, err := normalizeRegistry(server)
		if err != nil || registry != t.registry {
			continue
		}
		user, _ := g.env(v.user)
		password, _ := g.env(v.password)
		if user == "" || password == "" {
			continue
		}
		return credential{
			auth: authn.AuthConfig{Username: user, Password: password},
			from: fmt.Sprintf("GitLab CI variables %s and %s", v.user, v.password),
		}, true, nil
	}
	return credential{}, false, nil
}

func (g gitlabCredentials) searched(t target) string {
	var why []string
	for _, v := range gitlabVariables {
		server, _ := g.env(v.server)
		if server == "" {
			why = append(why, v.server+" not set")
			continue
		}
		if registry, err := normalizeRegistry(server); err != nil || registry != t.registry {
			why = append(why, fmt.Sprintf("%s %q is another registry", v.server, server))
			continue
		}
		why = append(why, fmt.Sprintf("%s %q, but %s or %s is empty", v.server, server, v.user, v.password))
	}
	return "GitLab CI variables: " + strings.Join(why, ", ")
}
