package dockerfile

import (
	"errors"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// FuzzParsePlanExpand runs a fuzzed Dockerfile through the whole front end:
// Parse, Plan for the last stage and every named one, then the expansion of
// every instruction the way the executor expands them (ARG declared, ENV
// set, ONBUILD triggers parsed and expanded). Nothing may panic, every
// error must be a located *Error within the file, and no error may quote
// more of an unknown line than its first word.
func FuzzParsePlanExpand(f *testing.F) {
	// Seeds: testdata/fuzz/FuzzParsePlanExpand (stages, ARG and ENV,
	// directives, heredocs, ONBUILD, expansions, a docker config, a long
	// line, a BOM with CRLF).
	f.Fuzz(func(t *testing.T, src string) {
		nlines := strings.Count(src, "\n") + 1
		located := func(what string, err error) {
			t.Helper()
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("%s: error %v (%T) is not an *Error", what, err, err)
			}
			if e.Line < 0 || e.Line > nlines {
				t.Fatalf("%s: error at line %d of a %d-line file: %v", what, e.Line, nlines, err)
			}
			_ = e.Error()
		}
		d, err := Parse(strings.NewReader(src), "Dockerfile")
		if err != nil {
			located("Parse", err)
			var u *instructions.UnknownInstructionError
			if errors.As(err, &u) {
				if word := strings.Fields(u.Instruction); len(word) > 0 && !isInstructionWord(word[0]) && strings.Contains(err.Error(), word[0]) {
					t.Fatalf("an unknown line is quoted in %q", err)
				}
			}
			return
		}
		targets := []string{""}
		for _, st := range d.Stages {
			if st.Name != "" {
				targets = append(targets, st.Name)
			}
		}
		for _, target := range targets {
			p, err := d.Plan(PlanOptions{Target: target, BuildArgs: map[string]string{"A": "a", "BASE": "busybox"}})
			if err != nil {
				located("Plan", err)
				continue
			}
			scopes := map[*Stage]*Scope{}
			for _, s := range p.Stages {
				sc := p.NewScope(s, []string{"PATH=/bin", "HOME=/root"})
				if s.BaseStage != nil && scopes[s.BaseStage] != nil {
					sc = scopes[s.BaseStage].Child(s)
				}
				scopes[s] = sc
				for _, cmd := range s.Commands {
					expandLike(t, sc, cmd, located)
				}
			}
		}
	})
}

// expandLike expands cmd as the executor does, ONBUILD triggers included.
func expandLike(t *testing.T, sc *Scope, cmd instructions.Command, located func(string, error)) {
	t.Helper()
	switch c := cmd.(type) {
	case *instructions.ArgCommand:
		for _, a := range c.Args {
			if _, err := sc.DeclareArg(a); err != nil {
				// The executor locates these itself.
				located("DeclareArg", sc.plan.Dockerfile.CommandError(cmd, err))
			}
		}
		return
	case *instructions.OnbuildCommand:
		trigger, err := sc.ParseTrigger(c.Expression)
		if err != nil {
			located("ParseTrigger", err)
			return
		}
		if _, err := sc.ExpandCommand(trigger); err != nil {
			located("ExpandCommand of a trigger", err)
		}
		return
	}
	x, err := sc.ExpandCommand(cmd)
	if err != nil {
		located("ExpandCommand", err)
		return
	}
	if env, ok := x.(*instructions.EnvCommand); ok {
		for _, kv := range env.Env {
			sc.SetEnv(kv.Key, kv.Value)
		}
	}
}
