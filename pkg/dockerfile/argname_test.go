package dockerfile

import (
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// The name of an ARG is expanded like its value, with the scope before the
// instruction, in a stage and before the first FROM.
func TestArgNameExpansion(t *testing.T) {
	src := `ARG tool=GO
ARG ${tool}_IMAGE=golang
ARG ${tool}_TAG=1.26 ${tool}_FULL=${GO_IMAGE}:1
FROM ${GO_IMAGE}:${GO_TAG} AS build
ARG tool=NODE
ARG ${tool}_VERSION=22 ${tool}_MAJOR=${NODE_VERSION}
ARG ${tool}_HOME=/opt/${tool}
ENV KIND=node
ARG ${KIND}_env=from-env
RUN true
`
	p := mustPlan(t, src, PlanOptions{BuildArgs: map[string]string{"NODE_VERSION": "20", "GO_TAG": "1.25"}})
	if p.Target.Base != "golang:1.25" {
		t.Errorf("FROM resolved to %q, want golang:1.25 (meta ARG names expanded, the build argument for GO_TAG applied)", p.Target.Base)
	}
	r := execute(t, p, nil)[p.Target]
	env := r.runEnv[0]
	for key, want := range map[string]string{
		"NODE_VERSION": "20", // the build argument, by the expanded name
		"NODE_HOME":    "/opt/NODE",
		"node_env":     "from-env", // an ENV takes part in the name too
		// Values are resolved pair by pair, as BuildKit does: the pair
		// before, declared under its expanded name, is visible.
		"NODE_MAJOR": "20",
	} {
		if got, ok := lookup(env, key); !ok || got != want {
			t.Errorf("RUN sees %s=%q (set once: %v), want %q\n%q", key, got, ok, want, env)
		}
	}
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); strings.Contains(k, "$") {
			t.Errorf("RUN sees an unexpanded name: %q", kv)
		}
	}
	if len(p.UnusedBuildArgs) != 0 {
		t.Errorf("build arguments for expanded names reported unused: %q", p.UnusedBuildArgs)
	}

	// The expanded instruction names the ARGs as declared (for history).
	for _, cmd := range p.Target.Commands {
		if c, ok := cmd.(*instructions.ArgCommand); ok && c.Args[0].Key == "${tool}_HOME" {
			sc := p.NewScope(p.Target, nil)
			sc.DeclareArg(instructions.KeyValuePairOptional{Key: "tool", Value: strPtr("X")})
			x, err := sc.ExpandCommand(c)
			if err != nil {
				t.Fatal(err)
			}
			if got := x.(*instructions.ArgCommand).Args[0]; got.Key != "X_HOME" || *got.Value != "/opt/${tool}" {
				t.Errorf("ExpandCommand gave %s=%v, want X_HOME with the value left to DeclareArg", got.Key, *got.Value)
			}
			if c.Args[0].Key != "${tool}_HOME" {
				t.Error("ExpandCommand changed the planned instruction")
			}
		}
	}
}

func TestArgNameExpansionErrors(t *testing.T) {
	for _, tc := range []struct {
		src  string
		line int
		want string
	}{
		{"ARG ${unset}=1\nFROM busybox\n", 1, `the ARG name "${unset}" expands to an empty name`},
		{"ARG A=\"x y\"\nARG ${A}=1\nFROM busybox\n", 2, `the ARG name "${A}" expands to "x y", which is not a name`},
		{"ARG ${N:?needed}=1\nFROM busybox\n", 1, "N: needed"},
	} {
		_, err := mustParse(t, tc.src).Plan(PlanOptions{})
		wantError(t, err, tc.line, tc.want)
	}
	// In a stage the error surfaces when the executor expands the
	// instruction.
	p := mustPlan(t, "FROM busybox\nARG ${unset}=1\n", PlanOptions{})
	_, err := p.NewScope(p.Target, nil).ExpandCommand(p.Target.Commands[0])
	wantError(t, err, 2, `the ARG name "${unset}" expands to an empty name`)
}

func strPtr(s string) *string { return &s }
