package deploy_test

import "strings"

// fileRule is what a file of deploy/ may do that the others may not.
type fileRule struct {
	// configMapCredentials: the docker config may come from a ConfigMap,
	// the way older kaniko guides show (credentials/README.md says why a
	// Secret is better).
	configMapCredentials bool
	// loginInJob: the jobs log in with `kiln login`: kiln's containers have
	// no docker config mounted (the login writes the image's own
	// /kiln/.docker), and every push follows a login to its registry.
	loginInJob bool
}

// fileRules are the exceptions, by file or directory (ending in "/") of
// deploy/.
var fileRules = map[string]fileRule{
	"credentials/configmap.yaml": {configMapCredentials: true},
	"swr/":                       {loginInJob: true},
}

// ruleFor returns the rule of a file of deploy/ (a path relative to it).
func ruleFor(path string) fileRule {
	for prefix, r := range fileRules {
		if path == prefix || (strings.HasSuffix(prefix, "/") && strings.HasPrefix(path, prefix)) {
			return r
		}
	}
	return fileRule{}
}
