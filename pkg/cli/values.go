package cli

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/pkg/sshagent"
)

// parsePlatform parses --custom-platform; empty means this machine's.
func parsePlatform(s string) (v1.Platform, error) {
	if s == "" {
		return v1.Platform{OS: "linux", Architecture: runtime.GOARCH}, nil
	}
	p, err := v1.ParsePlatform(s)
	if err != nil || p.OS == "" || p.Architecture == "" {
		return v1.Platform{}, fmt.Errorf("invalid --custom-platform %q: want OS/ARCH[/VARIANT], e.g. linux/arm64", s)
	}
	return *p, nil
}

// reproducibleEpoch is $SOURCE_DATE_EPOCH, or the Unix epoch.
func reproducibleEpoch() (time.Time, error) {
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	sec, err := strconv.ParseInt(v, 10, 64)
	if err != nil || sec < 0 {
		return time.Time{}, fmt.Errorf("invalid SOURCE_DATE_EPOCH %q: want seconds since 1970", v)
	}
	return time.Unix(sec, 0).UTC(), nil
}

// parseBuildArgs resolves --build-arg values: NAME alone takes the value
// from the environment and is dropped when unset, like docker build.
func parseBuildArgs(args []string) (map[string]string, error) {
	out := map[string]string{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if k == "" {
			return nil, fmt.Errorf("invalid --build-arg %q: want NAME=VALUE or NAME", a)
		}
		if !ok {
			env, set := os.LookupEnv(k)
			if !set {
				continue
			}
			v = env
		}
		out[k] = v
	}
	return out, nil
}

// parseKeyValues parses repeated KEY=VALUE flags.
func parseKeyValues(flag string, values []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range values {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("invalid %s %q: want KEY=VALUE", flag, kv)
		}
		out[k] = v
	}
	return out, nil
}

// parseSecrets reads --secret id=ID,src=FILE (or env=VAR) values.
func parseSecrets(values []string) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, s := range values {
		fields := map[string]string{}
		for _, part := range strings.Split(s, ",") {
			k, v, ok := strings.Cut(part, "=")
			if !ok {
				return nil, fmt.Errorf("invalid --secret %q: want id=ID,src=FILE or id=ID,env=VAR", s)
			}
			fields[strings.TrimSpace(k)] = v
		}
		id := fields["id"]
		if id == "" {
			return nil, fmt.Errorf("invalid --secret %q: no id", s)
		}
		src := fields["src"]
		if src == "" {
			src = fields["source"]
		}
		switch {
		case src != "":
			data, err := os.ReadFile(src)
			if err != nil {
				return nil, fmt.Errorf("--secret id=%s: %w", id, err)
			}
			out[id] = data
		case fields["env"] != "":
			v, ok := os.LookupEnv(fields["env"])
			if !ok {
				return nil, fmt.Errorf("--secret id=%s: environment variable %q is not set", id, fields["env"])
			}
			out[id] = []byte(v)
		default:
			return nil, fmt.Errorf("invalid --secret %q: give src=FILE or env=VAR", s)
		}
	}
	return out, nil
}

// parseSSH reads --ssh values as docker buildx does: ID alone forwards the
// agent of $SSH_AUTH_SOCK (authSock), ID=SOCKET another agent, and
// ID=KEY[,KEY...] serves those private keys from memory.
func parseSSH(values []string, authSock string) (map[string]*sshagent.Agent, error) {
	out := map[string]*sshagent.Agent{}
	for _, v := range values {
		id, paths, _ := strings.Cut(v, "=")
		if id == "" {
			return nil, fmt.Errorf("invalid --ssh %q: want ID, ID=SOCKET or ID=KEYFILE[,KEYFILE...]", v)
		}
		if _, dup := out[id]; dup {
			return nil, fmt.Errorf("--ssh %q given twice", id)
		}
		if paths == "" {
			if authSock == "" {
				return nil, fmt.Errorf("--ssh %s forwards the agent of $SSH_AUTH_SOCK, which is not set: give --ssh %s=/path/to/key", id, id)
			}
			paths = authSock
		}
		files := strings.Split(paths, ",")
		var a *sshagent.Agent
		var err error
		if st, serr := os.Stat(files[0]); serr == nil && st.Mode()&os.ModeSocket != 0 && len(files) == 1 {
			a, err = sshagent.FromSocket(files[0])
		} else {
			a, err = sshagent.FromKeys(files)
		}
		if err != nil {
			return nil, fmt.Errorf("--ssh %s: %w", id, err)
		}
		out[id] = a
	}
	return out, nil
}
