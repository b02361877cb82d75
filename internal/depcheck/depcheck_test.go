package depcheck

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
)

const module = "github.com/kiln-build/kiln/"

// allowed lists, for each package, the kiln packages it may import
// directly: data flows one way, CLI → options → dockerfile plan → executor
// → snapshot/layers → registry.
var allowed = map[string][]string{
	"cmd/kiln":              {"pkg/cli", "pkg/sandbox"},
	"pkg/cli":               {"pkg/buildcontext", "pkg/cache", "pkg/dockerfile", "pkg/executor", "pkg/layer", "pkg/layerstore", "pkg/logging", "pkg/manifest", "pkg/output", "pkg/progress", "pkg/registry", "pkg/sandbox", "pkg/sshagent", "pkg/workdir"},
	"pkg/buildcontext":      {"pkg/compression", "pkg/fsview", "pkg/rootfs"},
	"pkg/cache":             {"pkg/workdir"},
	"pkg/compression":       nil,
	"pkg/copier":            {"pkg/compression", "pkg/fsview", "pkg/layer", "pkg/rootfs"},
	"pkg/dockerfile":        nil,
	"pkg/executor":          {"pkg/cache", "pkg/compression", "pkg/copier", "pkg/dockerfile", "pkg/fsview", "pkg/layer", "pkg/layerstore", "pkg/progress", "pkg/rootfs", "pkg/sandbox", "pkg/snapshot", "pkg/sshagent", "pkg/userdb", "pkg/workdir"},
	"pkg/fsview":            nil,
	"pkg/layer":             nil,
	"pkg/logging":           nil,
	"pkg/manifest":          {"pkg/registry"},
	"pkg/output":            nil,
	"pkg/registry":          {"pkg/progress"},
	"pkg/rootfs":            {"pkg/fsview"},
	"pkg/rootfs/rootfstest": nil,
	"pkg/sandbox":           nil,
	"pkg/snapshot":          {"pkg/fsview", "pkg/layer"},
	"pkg/userdb":            {"pkg/fsview"},
	"pkg/sshagent":          nil,
	"pkg/layerstore":        {"pkg/layer"},
	"pkg/progress":          nil,
	"pkg/workdir":           nil,
}

// never lists packages that must not depend, even indirectly, on others:
// the build's pure parts know nothing of registries and sandboxes.
var never = map[string][]string{
	"pkg/copier":     {"pkg/registry", "pkg/sandbox"},
	"pkg/layer":      {"pkg/registry", "pkg/sandbox"},
	"pkg/dockerfile": {"pkg/registry", "pkg/sandbox"},
	"pkg/snapshot":   {"pkg/registry", "pkg/sandbox"},
	"pkg/rootfs":     {"pkg/registry", "pkg/sandbox"},
	"pkg/cache":      {"pkg/registry", "pkg/sandbox", "pkg/executor"},
}

// flagPackages may only be imported by pkg/cli.
var flagPackages = []string{"github.com/spf13/cobra", "github.com/spf13/pflag"}

type goPackage struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

func listPackages(t *testing.T) map[string]goPackage {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps=false", "-json", "./cmd/...", "./pkg/...")
	cmd.Dir = testutil.RepoRoot()
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string]goPackage{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p goPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs[strings.TrimPrefix(p.ImportPath, module)] = p
	}
	return pkgs
}

func TestPackageRules(t *testing.T) {
	pkgs := listPackages(t)
	for name, p := range pkgs {
		allow, known := allowed[name]
		if !known {
			t.Errorf("%s is not in the package map: add it to docs/architecture.md and to this test", name)
			continue
		}
		for _, imp := range p.Imports {
			if kiln, ok := strings.CutPrefix(imp, module); ok && !slices.Contains(allow, kiln) {
				t.Errorf("%s imports %s, which the package map does not allow", name, kiln)
			}
			if slices.Contains(flagPackages, imp) && name != "pkg/cli" {
				t.Errorf("%s imports %s: only pkg/cli knows about flags", name, imp)
			}
		}
		for _, dep := range p.Deps {
			if kiln, ok := strings.CutPrefix(dep, module); ok && slices.Contains(never[name], kiln) {
				t.Errorf("%s depends on %s, even if indirectly", name, kiln)
			}
		}
	}
	for name := range allowed {
		if _, ok := pkgs[name]; !ok {
			t.Errorf("the package map lists %s, which does not exist", name)
		}
	}
}
