package registry

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// mirror is a registry, and a path in it, that serves the images of
// another registry: "harbor.example.com/dockerhub-proxy" serves
// "docker.io/library/busybox" as
// "harbor.example.com/dockerhub-proxy/library/busybox".
type mirror struct {
	host   string // "harbor.example.com", as given
	prefix string // "dockerhub-proxy", "" for none
}

// parseMirrors groups the mirror flags by the registry they serve, in the
// order given.
func parseMirrors(flags []mirrorFlag) (map[string][]mirror, error) {
	out := map[string][]mirror{}
	for _, f := range flags {
		from := name.DefaultRegistry
		what := "registry mirror"
		if f.from != "" {
			what = fmt.Sprintf("registry map %q=%q", f.from, f.to)
			reg, err := normalizeRegistry(f.from)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", what, err)
			}
			from = reg
		}
		m, err := parseMirror(f.to)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", what, f.to, err)
		}
		out[from] = append(out[from], m)
	}
	return out, nil
}

func parseMirror(s string) (mirror, error) {
	if strings.HasPrefix(s, "http://") {
		return mirror{}, fmt.Errorf("give the host without a scheme, and allow plain HTTP with --insecure-registry")
	}
	s = strings.TrimPrefix(s, "https://")
	host, prefix, _ := strings.Cut(strings.TrimSuffix(s, "/"), "/")
	if _, err := name.NewRegistry(host, name.WeakValidation); err != nil {
		return mirror{}, err
	}
	if prefix != "" {
		if _, err := name.NewRepository(host+"/"+prefix, name.WeakValidation); err != nil {
			return mirror{}, fmt.Errorf("path %q: %w", prefix, err)
		}
	}
	return mirror{host: host, prefix: prefix}, nil
}

// mirrorsFor returns ref as each of its registry's mirrors names it, in
// order, each marked insecure as its own registry's rules say.
func (c *Client) mirrorsFor(ref name.Reference) ([]name.Reference, error) {
	ms := c.mirrors[strings.ToLower(ref.Context().RegistryStr())]
	out := make([]name.Reference, 0, len(ms))
	for _, m := range ms {
		repo := ref.Context().RepositoryStr()
		if m.prefix != "" {
			repo = m.prefix + "/" + repo
		}
		s := m.host + "/" + repo
		switch r := ref.(type) {
		case name.Digest:
			s += "@" + r.DigestStr()
		case name.Tag:
			s += ":" + r.TagStr()
		}
		mr, err := c.parseReference(s, pull)
		if err != nil {
			return nil, fmt.Errorf("mirror %q: %w", m.host+"/"+m.prefix, err)
		}
		out = append(out, mr)
	}
	return out, nil
}
