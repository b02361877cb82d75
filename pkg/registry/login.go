package registry

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// SaveCredentials stores auth for registry ("host[:port]", optionally with
// a path: "harbor.example.com/project") in the docker config file at path,
// as docker login does: in the credential helper the file names for the
// registry (credHelpers, else credsStore) if any, else base64-encoded in
// "auths". Everything else in the file is kept; the file is replaced
// atomically and left readable by its owner only. It returns where the
// credentials went, for the user.
func SaveCredentials(path, registry string, auth authn.AuthConfig) (string, error) {
	reg, repoPath, err := parseAuthKey(registry)
	if err != nil {
		return "", fmt.Errorf("registry %q: %w", registry, err)
	}
	if strings.Contains(registry, "://") {
		return "", fmt.Errorf("registry %q: give a host[:port], without a scheme", registry)
	}
	doc := map[string]json.RawMessage{}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return "", fmt.Errorf("reading docker config: %w", err)
	default:
		if err := json.Unmarshal(data, &doc); err != nil {
			return "", fmt.Errorf("reading docker config %q: %w (fix or remove the file)", path, jsonError(data, err))
		}
	}
	var cf dockerConfigFile
	if data != nil {
		if err := json.Unmarshal(data, &cf); err != nil {
			return "", fmt.Errorf("reading docker config %q: %w", path, jsonError(data, err))
		}
	}
	auths := map[string]json.RawMessage{}
	if raw, ok := doc["auths"]; ok {
		if err := json.Unmarshal(raw, &auths); err != nil {
			return "", fmt.Errorf("reading docker config %q: \"auths\": %w", path, err)
		}
	}
	// Drop other spellings of the same key ("https://host", "host/v2/"):
	// which of two equal keys wins would be left to chance.
	for k := range auths {
		if r, p, err := parseAuthKey(k); err == nil && r == reg && p == repoPath {
			delete(auths, k)
		}
	}

	key := authKeyFor(reg, repoPath)
	entry := authEntry{}
	where := fmt.Sprintf("docker config %q key %q", path, key)
	helper := cf.CredsStore
	for k, h := range cf.CredHelpers {
		if r, _, err := parseAuthKey(k); err == nil && r == reg {
			helper = h
		}
	}
	if helper != "" && repoPath == "" {
		if err := storeInHelper(helper, key, auth); err != nil {
			return "", err
		}
		where = fmt.Sprintf("credential helper %q (named by %q)", helperProgram(helper), path)
	} else {
		if auth.Username != "" || auth.Password != "" {
			entry.Auth = base64.StdEncoding.EncodeToString([]byte(auth.Username + ":" + auth.Password))
		}
		entry.IdentityToken = auth.IdentityToken
		entry.RegistryToken = auth.RegistryToken
	}
	if auths[key], err = json.Marshal(entry); err != nil {
		return "", err
	}
	if doc["auths"], err = json.Marshal(auths); err != nil {
		return "", err
	}
	out, err := json.MarshalIndent(doc, "", "\t")
	if err != nil {
		return "", err
	}
	if err := writeConfigFile(path, out); err != nil {
		return "", err
	}
	return where, nil
}

// writeConfigFile replaces path with data, mode 0600, through a temporary
// file in the same directory: a reader never sees half a file.
func writeConfigFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("writing docker config %q: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, ".config.json-*") // mode 0600
	if err != nil {
		return fmt.Errorf("writing docker config %q: %w", path, err)
	}
	_, err = tmp.Write(append(bytes.TrimRight(data, "\n"), '\n'))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing docker config %q: %w", path, err)
	}
	return nil
}

var swrRegion = regexp.MustCompile(`^[a-z]{2}(-[a-z0-9]+)+$`)

// SWRLogin derives Huawei Cloud SWR's long-term login from an access key
// pair: the registry "swr.REGION.myhuaweicloud.com", the user "REGION@AK"
// and the password hex(HMAC-SHA256(key SK, message AK)), as Huawei
// documents for `docker login`.
func SWRLogin(region, ak, sk string) (registry string, auth authn.AuthConfig, err error) {
	if !swrRegion.MatchString(region) {
		return "", auth, fmt.Errorf("invalid SWR region %q: want a region ID such as \"cn-north-4\" or \"ap-southeast-1\"", region)
	}
	if ak == "" || sk == "" {
		return "", auth, errors.New("SWR login needs both the access key ID (AK) and the secret access key (SK)")
	}
	mac := hmac.New(sha256.New, []byte(sk))
	mac.Write([]byte(ak))
	return "swr." + region + ".myhuaweicloud.com", authn.AuthConfig{
		Username: region + "@" + ak,
		Password: hex.EncodeToString(mac.Sum(nil)),
	}, nil
}
