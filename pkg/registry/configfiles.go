package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// The fixed places searched for a docker config, after --docker-config or
// $DOCKER_CONFIG: kiln's image, then where kaniko's users mount it.
var fixedConfigDirs = []string{"/kiln/.docker", "/kaniko/.docker"}

// kubernetesSecretKey is the file a Secret of type
// kubernetes.io/dockerconfigjson holds. Mounted without "items", the
// directory has this file and no config.json.
const kubernetesSecretKey = ".dockerconfigjson"

// configPlace is a docker config file searched for credentials.
type configPlace struct {
	path string
	// origin says where path came from, for messages: `--docker-config
	// "/ci/docker"`, `DOCKER_CONFIG "/run/docker"`; "" for a fixed place.
	origin string
	// inDir is true when path is config.json in a directory that was
	// named, rather than a file named directly: the directory is then
	// also searched for a Kubernetes Secret's .dockerconfigjson.
	inDir bool
}

// configPlaces lists the docker config files searched, in order (see
// DockerConfigPaths), and notes on the variables that chose the first:
// flag is --docker-config (nil when not given), env reads the environment.
func configPlaces(flag *string, env func(string) (string, bool)) (places []configPlace, notes []string) {
	switch {
	case flag != nil && *flag != "":
		places = append(places, namedPlace(*flag, fmt.Sprintf("--docker-config %q", *flag)))
	default:
		if flag != nil {
			notes = append(notes, `--docker-config is empty ("")`)
		}
		switch v, ok := env("DOCKER_CONFIG"); {
		case !ok:
			notes = append(notes, "DOCKER_CONFIG is not set")
		case v == "":
			notes = append(notes, `DOCKER_CONFIG is empty ("")`)
		default:
			places = append(places, namedPlace(v, fmt.Sprintf("DOCKER_CONFIG %q", v)))
		}
	}
	for _, dir := range fixedConfigDirs {
		places = append(places, configPlace{path: filepath.Join(dir, "config.json"), inDir: true})
	}
	home, _ := env("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	if home != "" {
		places = append(places, configPlace{path: filepath.Join(home, ".docker", "config.json"), inDir: true})
	}
	if f, _ := env("REGISTRY_AUTH_FILE"); f != "" {
		places = append(places, configPlace{path: f, origin: fmt.Sprintf("REGISTRY_AUTH_FILE %q", f)})
	}
	return places, notes
}

// namedPlace is the place a --docker-config or DOCKER_CONFIG value names:
// a directory holding config.json, or a .json file.
func namedPlace(value, origin string) configPlace {
	if strings.HasSuffix(value, ".json") {
		return configPlace{path: value, origin: origin}
	}
	return configPlace{path: filepath.Join(value, "config.json"), origin: origin, inDir: true}
}

// DockerConfigPaths lists the credential files searched, in order:
// dockerConfig (--docker-config: a directory holding config.json, or a
// .json file) or else $DOCKER_CONFIG/config.json, then
// /kiln/.docker/config.json, /kaniko/.docker/config.json (where kaniko's
// users mount it), ~/.docker/config.json and $REGISTRY_AUTH_FILE (the
// containers auth.json of podman and skopeo). Missing files are skipped.
// A directory without config.json but with a Kubernetes Secret's
// .dockerconfigjson is read from that file.
func DockerConfigPaths(dockerConfig string) []string {
	var flag *string
	if dockerConfig != "" {
		flag = &dockerConfig
	}
	places, _ := configPlaces(flag, os.LookupEnv)
	paths := make([]string, len(places))
	for i, p := range places {
		paths[i] = p.path
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

// unusableConfig is a place searched that gave no credentials source: a
// missing file, an empty directory, invalid JSON. It has no credentials;
// it is listed, with the reason, when a registry needs some.
type unusableConfig struct{ why string }

func (u unusableConfig) lookup(target) (credential, bool, error) { return credential{}, false, nil }
func (u unusableConfig) searched(target) string                  { return u.why }

// describe names a place in messages: `docker config "/kiln/.docker/config.json"`,
// with its origin when it was named by a flag or variable.
func (p configPlace) describe() string {
	s := fmt.Sprintf("docker config %q", p.path)
	if p.origin != "" {
		s += " (from " + p.origin + ")"
	}
	return s
}

// loadPlace reads the docker config at p. It returns the source credentials
// are looked up in: the parsed file, or an unusableConfig saying why there
// is none. Only the flag's and DOCKER_CONFIG's problems are warnings: the
// fixed places are often absent.
func loadPlace(p configPlace, helpers *helperRunner) credentialSource {
	log := helpers.log
	data, err := os.ReadFile(p.path)
	// ENOTDIR: the directory named is a file.
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		why := p.missingReason()
		if p.inDir {
			secret := filepath.Join(filepath.Dir(p.path), kubernetesSecretKey)
			if sdata, serr := os.ReadFile(secret); serr == nil {
				log.Infof("Docker config %q is missing; reading %q beside it (a Kubernetes Secret of type kubernetes.io/dockerconfigjson mounted without items)", p.path, secret)
				sp := configPlace{path: secret, origin: p.origin}
				return parsePlace(sp, sdata, helpers)
			}
		}
		if p.origin != "" {
			log.Warnf("%s: %s; searching the other places for credentials", p.describe(), why)
		} else {
			log.Debugf("%s: %s", p.describe(), why)
		}
		return unusableConfig{why: p.describe() + ": " + why}
	}
	if err != nil {
		// A non-root build in an image whose HOME is /root: the file is
		// not this user's to read, and not an error.
		log.Warnf("Skipping %s: %v", p.describe(), err)
		return unusableConfig{why: fmt.Sprintf("%s: cannot be read (%v)", p.describe(), errors.Unwrap(err))}
	}
	return parsePlace(p, data, helpers)
}

// parsePlace parses the docker config data read at p. The source is named
// by its path alone where credentials are used; where it is skipped, with
// its origin too.
func parsePlace(p configPlace, data []byte, helpers *helperRunner) credentialSource {
	d, err := parseDockerConfig(fmt.Sprintf("docker config %q", p.path), data, helpers)
	if err != nil {
		why := fmt.Sprintf("%s: %v", p.describe(), errors.Unwrap(err))
		helpers.log.Warnf("Skipping %s", why)
		return unusableConfig{why: why}
	}
	return d
}

// missingReason says why the missing file at p is missing: its directory
// does not exist, is empty, or holds other files (named, so that a Secret
// mounted with another key shows).
func (p configPlace) missingReason() string {
	if !p.inDir {
		return "no such file"
	}
	dir := filepath.Dir(p.path)
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("no such directory %q", dir)
	case err != nil:
		return fmt.Sprintf("no config.json, and directory %q cannot be listed (%v)", dir, errors.Unwrap(err))
	}
	var names []string
	for _, e := range entries {
		// A mounted Secret's or ConfigMap's bookkeeping: "..data",
		// "..2024_01_01_00_00_00.123".
		if !strings.HasPrefix(e.Name(), "..") {
			names = append(names, fmt.Sprintf("%q", e.Name()))
		}
	}
	switch {
	case len(names) == 0:
		return fmt.Sprintf("no config.json: directory %q is empty", dir)
	case len(names) > 5:
		names = append(names[:5], fmt.Sprintf("and %d more", len(names)-5))
	}
	return fmt.Sprintf("no config.json in directory %q (it holds %s)", dir, strings.Join(names, ", "))
}

// jsonError says where in data a JSON decoding error is: "line 3, column
// 12: invalid character ...".
func jsonError(data []byte, err error) error {
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
		offset int64 = -1
	)
	switch {
	case errors.As(err, &syntax):
		offset = syntax.Offset
	case errors.As(err, &typ):
		offset = typ.Offset
	}
	if offset < 0 || offset > int64(len(data)) {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	// The offset counts the byte at fault, except at the end of the
	// input, where the fault is the missing byte after the last.
	before := data[:offset]
	line := 1 + strings.Count(string(before), "\n")
	column := len(before) - strings.LastIndexByte(string(before), '\n') - 1
	if syntax != nil && offset == int64(len(data)) && strings.Contains(err.Error(), "unexpected end") {
		column++
	}
	if column < 1 {
		column = 1
	}
	return fmt.Errorf("invalid JSON at line %d, column %d: %w", line, column, err)
}
