package dockerfile

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

func mustParse(t *testing.T, src string) *Dockerfile {
	t.Helper()
	d, err := Parse(strings.NewReader(src), "Dockerfile")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return d
}

func mustPlan(t *testing.T, src string, opts PlanOptions) *Plan {
	t.Helper()
	p, err := mustParse(t, src).Plan(opts)
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	return p
}

// wantError checks that err is an *Error at line whose message contains
// each of the fragments.
func wantError(t *testing.T, err error, line int, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one at line %d containing %q", line, fragments)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is a %T, not an *Error", err, err)
	}
	if e.Line != line {
		t.Errorf("error %q is at line %d, want %d", err, e.Line, line)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not contain %q", err, f)
		}
	}
}

// run is what a simulated executor observed in one stage.
type run struct {
	// labels holds the expanded LABEL values, by key.
	labels map[string]string
	// runEnv and declared hold RunEnv and DeclaredArgs at each RUN.
	runEnv   [][]string
	declared [][]string
	// copies holds the expanded COPY instructions.
	copies []*instructions.CopyCommand
	// env is Env at the end of the stage.
	env []string
}

// execute walks the plan the way the executor does: one scope per stage,
// ARG and ENV applied after expansion. imageEnv gives the environment of
// every image base.
func execute(t *testing.T, p *Plan, imageEnv []string) map[*Stage]*run {
	t.Helper()
	scopes := map[*Stage]*Scope{}
	out := map[*Stage]*run{}
	for _, s := range p.Stages {
		var sc *Scope
		if s.BaseStage != nil {
			sc = scopes[s.BaseStage].Child(s)
		} else {
			sc = p.NewScope(s, imageEnv)
		}
		r := &run{labels: map[string]string{}}
		for _, cmd := range s.Commands {
			x, err := sc.ExpandCommand(cmd)
			if err != nil {
				t.Fatalf("ExpandCommand: %v", err)
			}
			switch c := x.(type) {
			case *instructions.ArgCommand:
				for _, a := range c.Args {
					if _, err := sc.DeclareArg(a); err != nil {
						t.Fatalf("DeclareArg(%s): %v", a.Key, err)
					}
				}
			case *instructions.EnvCommand:
				for _, kv := range c.Env {
					sc.SetEnv(kv.Key, kv.Value)
				}
			case *instructions.LabelCommand:
				for _, kv := range c.Labels {
					r.labels[kv.Key] = kv.Value
				}
			case *instructions.CopyCommand:
				r.copies = append(r.copies, c)
			case *instructions.RunCommand:
				r.runEnv = append(r.runEnv, sc.RunEnv())
				r.declared = append(r.declared, sc.DeclaredArgs())
			}
		}
		r.env = sc.Env()
		scopes[s] = sc
		out[s] = r
	}
	return out
}

// target executes the plan and returns what its target stage observed.
func target(t *testing.T, src string, opts PlanOptions, imageEnv ...string) *run {
	t.Helper()
	p := mustPlan(t, src, opts)
	return execute(t, p, imageEnv)[p.Target]
}

// lookup returns the value of key in a "K=V" list and whether it is set
// exactly once.
func lookup(env []string, key string) (string, bool) {
	var vals []string
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			vals = append(vals, v)
		}
	}
	if len(vals) != 1 {
		return strings.Join(vals, ","), false
	}
	return vals[0], true
}

func stageNames(stages []*Stage) []string {
	var out []string
	for _, s := range stages {
		n := s.Name
		if n == "" {
			n = "#" + strconv.Itoa(s.Index)
		}
		out = append(out, n)
	}
	return out
}

func equal(a, b []string) bool { return slices.Equal(a, b) }
