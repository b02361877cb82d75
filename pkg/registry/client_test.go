package registry

import (
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/testregistry"
)

func TestUserAgent(t *testing.T) {
	reg := testregistry.Start(t)
	seed(t, reg, "team/app:v1", randomImage(t, 4096, 1))
	seeded := len(reg.Requests())
	c, _ := newClient(t, WithInsecureRegistries(reg.Host), WithUserAgent("kiln/1.2.3"))
	img, err := c.Pull(t.Context(), reg.Ref("team/app:v1"), v1.Platform{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Push(t.Context(), img, []string{reg.Ref("team/app:v2")}); err != nil {
		t.Fatal(err)
	}
	for _, r := range reg.Requests()[seeded:] {
		if !strings.HasPrefix(r.UserAgent, "kiln/1.2.3") {
			t.Fatalf("%s %s sent User-Agent %q", r.Method, r.Path, r.UserAgent)
		}
	}
}
