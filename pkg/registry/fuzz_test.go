package registry

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/sirupsen/logrus/hooks/test"
)

// FuzzParseDockerConfig parses fuzzed docker config files (config.json,
// auth.json, DOCKER_AUTH_CONFIG) and checks that no secret the file holds
// ever appears in an error, a log line or the description of where a
// credential came from, and that every key with a secret is found again by
// a lookup of its registry and path. Credential helpers are never run.
func FuzzParseDockerConfig(f *testing.F) {
	// Seeds: testdata/fuzz/FuzzParseDockerConfig.
	f.Fuzz(func(t *testing.T, data []byte) {
		log, hook := test.NewNullLogger()
		d, err := parseDockerConfig("docker config \"fuzz.json\"", data, newHelperRunner(log))
		secrets := secretsIn(data)
		said := []string{}
		if err != nil {
			said = append(said, err.Error())
		}
		for _, e := range hook.AllEntries() {
			s, _ := e.String()
			said = append(said, s)
		}
		if d != nil {
			d.credHelpers, d.credsStore = nil, "" // never run a program
			for _, k := range d.keys {
				if !hasSecret(k.auth) {
					continue
				}
				cred, ok, err := d.lookup(target{registry: k.registry, repository: k.path})
				if err != nil || !ok || !hasSecret(cred.auth) {
					t.Fatalf("key %q (registry %q, path %q) not found again: %v, %v", k.key, k.registry, k.path, ok, err)
				}
				said = append(said, cred.from, d.searched(target{registry: k.registry, repository: k.path}))
			}
		}
		for _, s := range said {
			for _, secret := range secrets {
				if strings.Contains(s, secret) {
					t.Fatalf("secret %q appears in %q", secret, s)
				}
			}
		}
	})
}

// secretsIn returns the passwords and tokens a config file holds (decoded
// from "auth" too) that are recognisable as secrets: eight characters or
// more mixing digits, lower and upper case (a plain word such as "base64"
// may be part of kiln's own messages), and found nowhere else in the file
// (a key may legitimately equal a fuzzed password).
func secretsIn(data []byte) []string {
	var f struct {
		Auths map[string]map[string]any `json:"auths"`
	}
	if json.Unmarshal(data, &f) != nil {
		return nil
	}
	var out []string
	add := func(s string) {
		if len(s) >= 8 && strings.ContainsAny(s, "0123456789") && strings.ContainsAny(s, "abcdefghijklmnopqrstuvwxyz") &&
			strings.ContainsAny(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") &&
			strings.Count(string(data), s) <= 1 && !strings.Contains(string(data), `"`+s+`":`) {
			out = append(out, s)
		}
	}
	for _, e := range f.Auths {
		for _, field := range []string{"password", "identitytoken", "registrytoken"} {
			if s, ok := e[field].(string); ok {
				add(s)
			}
		}
		if a, ok := e["auth"].(string); ok {
			if raw, err := base64.StdEncoding.DecodeString(a); err == nil {
				if _, pw, ok := strings.Cut(string(raw), ":"); ok {
					add(pw)
				}
			}
			add(a)
		}
	}
	return out
}
