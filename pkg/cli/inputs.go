package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/kiln-build/kiln/pkg/buildcontext"
	"github.com/kiln-build/kiln/pkg/dockerfile"
)

// gitOptions reads kaniko's --git KEY=VALUE options and GIT_* environment
// variables. Unlike kaniko, which ignores unknown keys and takes the rest of
// a comma-separated value as the branch, it accepts the form its help shows
// ("branch=x,single-branch=true") and rejects unknown keys.
func gitOptions(values []string) (buildcontext.GitOptions, error) {
	g := buildcontext.GitOptions{
		Username: os.Getenv("GIT_USERNAME"),
		Password: os.Getenv("GIT_PASSWORD"),
		Token:    os.Getenv("GIT_TOKEN"),
	}
	switch m := os.Getenv("GIT_PULL_METHOD"); m {
	case "", "https":
	case "http":
		g.PlainHTTP = true
	default:
		return g, fmt.Errorf("invalid GIT_PULL_METHOD %q: use https or http", m)
	}
	for _, v := range values {
		for _, kv := range strings.Split(v, ",") {
			key, val, ok := strings.Cut(kv, "=")
			if !ok {
				return g, fmt.Errorf("invalid --git %q: want KEY=VALUE", kv)
			}
			var err error
			switch key {
			case "branch":
				g.Branch = val
			case "single-branch":
				var single bool
				single, err = strconv.ParseBool(val)
				g.AllBranches = !single
			case "depth":
				var n int
				if n, err = strconv.Atoi(val); err == nil && n < 0 {
					err = errors.New("a depth is 0 (the whole history) or more")
				}
				g.Depth = n
				if n == 0 {
					// 0 is no limit, as in kaniko's depth option;
					// kiln's default, 1, is GitOptions' zero value.
					g.Depth = -1
				}
			case "recurse-submodules":
				g.RecurseSubmodules, err = strconv.ParseBool(val)
			case "insecure-skip-tls":
				g.InsecureSkipTLS, err = strconv.ParseBool(val)
			default:
				return g, fmt.Errorf("unknown --git option %q: use branch, single-branch, depth, recurse-submodules or insecure-skip-tls", key)
			}
			if err != nil {
				return g, fmt.Errorf("invalid --git %q: %w", kv, err)
			}
		}
	}
	return g, nil
}

// readDockerfile reads the Dockerfile: "-" is stdin, an absolute path is
// used as is, a relative one is looked up in the context first and then,
// as kaniko does, relative to the current directory. A Dockerfile inside
// the context is read with its symlinks resolved inside the context, and
// only regular files up to dockerfile.MaxSize are read (see
// buildcontext.ReadDockerfile). It returns the path read ("" for stdin),
// for <Dockerfile>.dockerignore.
// Reading standard input stops when ctx is done.
func readDockerfile(ctx context.Context, name, contextDir string) (*dockerfile.Dockerfile, string, error) {
	data, p, err := buildcontext.ReadDockerfile(ctx, contextDir, name, os.Stdin, dockerfile.MaxSize)
	if err != nil {
		return nil, "", err
	}
	filename := name
	if name == "-" {
		filename = "Dockerfile"
	}
	df, err := dockerfile.Parse(bytes.NewReader(data), filename)
	return df, p, err
}
