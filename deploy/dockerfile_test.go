package deploy_test

import (
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/pkg/dockerfile"
)

// TestDockerfiles parses the Dockerfiles of deploy/ with kiln's own parser
// and plans every named stage, for each architecture kiln is built for.
func TestDockerfiles(t *testing.T) {
	for _, path := range deployFiles(t, kindDockerfile) {
		t.Run(path, func(t *testing.T) {
			df, err := dockerfile.Parse(strings.NewReader(readFile(t, path)), path)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range df.Warnings {
				t.Errorf("warning: %s", w)
			}
			for _, stage := range df.Stages {
				if stage.Name == "" {
					continue
				}
				for _, arch := range []string{"amd64", "arm64"} {
					opts := dockerfile.PlanOptions{Target: stage.Name, TargetPlatform: v1.Platform{OS: "linux", Architecture: arch}}
					if _, err := df.Plan(opts); err != nil {
						t.Errorf("stage %q for linux/%s: %v", stage.Name, arch, err)
					}
				}
			}
		})
	}
}
