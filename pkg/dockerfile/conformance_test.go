package dockerfile

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// conformanceCases is the shared corpus of Dockerfiles that kiln must build
// like the reference builder (shared/ lies beside the repository).
const conformanceCases = "../../../shared/conformance/cases"

type conformanceCase struct {
	BuildArgs     map[string]string `json:"build_args"`
	Target        string            `json:"target"`
	ExpectFailure bool              `json:"expect_failure"`
}

// TestConformanceCases parses and plans every case of the corpus, runs the
// scopes over the planned stages like the executor, and checks the stage
// graph and the variables of the cases that exercise them.
func TestConformanceCases(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join(conformanceCases, "*"))
	if err != nil || len(dirs) == 0 {
		t.Skipf("no conformance cases in %s", conformanceCases)
	}
	checks := map[string]func(t *testing.T, p *Plan, runs map[*Stage]*run){
		"target-stage": func(t *testing.T, p *Plan, _ map[*Stage]*run) {
			wantStages(t, p, "#0", "mytarget")
			wantCopyFrom(t, p.Target, "#0")
		},
		"arg-scope-copy-from": func(t *testing.T, p *Plan, _ map[*Stage]*run) {
			wantStages(t, p, "b", "#2")
			wantCopyFrom(t, p.Target, "b")
		},
		"copy-from-scoped-arg-override": func(t *testing.T, p *Plan, _ map[*Stage]*run) {
			wantStages(t, p, "build", "dev", "staging", "#3")
			wantCopyFrom(t, p.Target, "staging", "dev")
		},
		"multi-stage-arg-in-from": func(t *testing.T, p *Plan, _ map[*Stage]*run) {
			wantStages(t, p, "stage_a", "stage_b")
			if p.Target.BaseStage != p.Stages[0] {
				t.Errorf("stage_b's base is %q, not stage stage_a", p.Target.Base)
			}
		},
		"multi-stage-arg-in-copy-from": func(t *testing.T, p *Plan, _ map[*Stage]*run) {
			wantStages(t, p, "stage_a", "#1")
			wantCopyFrom(t, p.Target, "stage_a")
		},
		"multi-stage-mixed": func(t *testing.T, p *Plan, _ map[*Stage]*run) {
			wantStages(t, p, "myname", "myname2", "#2", "#3")
			wantCopyFrom(t, p.Target, "myname", "myname2", "#2")
		},
		"multi-stage-extended": func(t *testing.T, p *Plan, _ map[*Stage]*run) {
			wantStages(t, p, "builder", "#2")
		},
		"three-stage-deps": func(t *testing.T, p *Plan, _ map[*Stage]*run) {
			wantStages(t, p, "parent", "child", "independent", "#3")
			if got := stageNames(p.Target.Deps); !equal(got, []string{"parent", "child", "independent"}) {
				t.Errorf("Deps = %q", got)
			}
		},
		"run-mount-bind-from-stage": func(t *testing.T, p *Plan, _ map[*Stage]*run) {
			run := p.Target.Commands[0].(*instructions.RunCommand)
			if srcs := p.Target.MountFrom[run]; len(srcs) != 1 || srcs[0].Stage != p.Stages[0] {
				t.Errorf("MountFrom = %+v", srcs)
			}
		},
		"copy-chown-username": func(t *testing.T, p *Plan, runs map[*Stage]*run) {
			if p.Target.Base != "127.0.0.1:5000/library/debian:bookworm-slim" {
				t.Errorf("Base = %q", p.Target.Base)
			}
			if c := runs[p.Target].copies[0]; c.Chown != "myuser" {
				t.Errorf("COPY --chown = %q", c.Chown)
			}
		},
		"use-args-destination": func(t *testing.T, p *Plan, runs map[*Stage]*run) {
			if c := runs[p.Target].copies[0]; !equal(c.SourcePaths, []string{"Containerfile"}) || c.DestPath != "/dest/" {
				t.Errorf("COPY = %q -> %q", c.SourcePaths, c.DestPath)
			}
		},
		"leading-args": func(t *testing.T, p *Plan, runs map[*Stage]*run) {
			if p.Target.Base != "127.0.0.1:5000/library/busybox:latest" {
				t.Errorf("Base = %q", p.Target.Base)
			}
			wantEnv(t, runs[p.Target].env, "FOO", "")
			wantUnset(t, runs[p.Target].runEnv[0], "VERSION")
		},
		"arg-env-override": func(t *testing.T, p *Plan, runs map[*Stage]*run) {
			wantEnv(t, runs[p.Target].runEnv[0], "FOO", "bat")
		},
		"dupe-arg-env-name": func(t *testing.T, p *Plan, runs map[*Stage]*run) {
			wantEnv(t, runs[p.Target].runEnv[0], "WEBROOT", "https://example.org/bar")
		},
		"env-special-chars": func(t *testing.T, p *Plan, runs map[*Stage]*run) {
			wantEnv(t, runs[p.Target].env, "LIB", "$(PREFIX)/lib")
			wantEnv(t, runs[p.Target].env, "envcheck", "unique.test.string")
		},
		"build-arg-maintainer": func(t *testing.T, p *Plan, runs map[*Stage]*run) {
			r := runs[p.Target]
			wantUnset(t, r.runEnv[0], "USERNAME")
			for k, v := range map[string]string{"USERNAME": "praiskup", "UID": "1000", "CODE": "/opt/code", "PGDATA": "/opt/data", "PORT": "55555"} {
				wantEnv(t, r.runEnv[1], k, v)
				wantUnset(t, r.env, k)
			}
		},
		"env-precedence": func(t *testing.T, p *Plan, runs map[*Stage]*run) {
			first, second := runs[p.Stages[0]], runs[p.Stages[1]]
			for _, k := range []string{"E", "G", "I", "K"} {
				wantUnset(t, first.runEnv[0], k)
			}
			wantEnv(t, first.runEnv[1], "E", "E")
			wantEnv(t, second.runEnv[0], "a", "b")
			wantEnv(t, second.runEnv[0], "w", "x")
			wantUnset(t, second.runEnv[0], "I")
			wantEnv(t, second.runEnv[1], "K", "K")
		},
	}
	for _, dir := range dirs {
		name := filepath.Base(dir)
		t.Run(name, func(t *testing.T) {
			var c conformanceCase
			if b, err := os.ReadFile(filepath.Join(dir, "case.json")); err == nil {
				if err := json.Unmarshal(b, &c); err != nil {
					t.Fatalf("case.json: %v", err)
				}
			}
			f, err := os.Open(filepath.Join(dir, "Dockerfile"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			d, err := Parse(f, "Dockerfile")
			if name == "copy-chown-bad-flag" {
				wantError(t, err, 3, "missing a value on flag: --chown")
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			p, err := d.Plan(PlanOptions{BuildArgs: c.BuildArgs, Target: c.Target})
			if err != nil {
				t.Fatalf("Plan: %v", err)
			}
			if c.Target != "" && p.Target.Name != c.Target {
				t.Errorf("Target = %q, want %q", p.Target.Name, c.Target)
			}
			runs := execute(t, p, []string{"PATH=/usr/bin:/bin"})
			if check := checks[name]; check != nil {
				check(t, p, runs)
			}
		})
	}
	for name := range checks {
		if _, err := os.Stat(filepath.Join(conformanceCases, name)); err != nil {
			t.Errorf("case %s is checked here but missing from the corpus", name)
		}
	}
}

func wantStages(t *testing.T, p *Plan, names ...string) {
	t.Helper()
	if got := stageNames(p.Stages); !equal(got, names) {
		t.Errorf("Stages = %q, want %q", got, names)
	}
	if p.Target != p.Stages[len(p.Stages)-1] {
		t.Errorf("Target %q is not the last planned stage", p.Target.Name)
	}
}

func wantCopyFrom(t *testing.T, s *Stage, names ...string) {
	t.Helper()
	var got []string
	for _, cmd := range s.Commands {
		if c, ok := cmd.(*instructions.CopyCommand); ok && c.From != "" {
			if src := s.CopyFrom[c]; src.Stage != nil {
				got = append(got, stageNames([]*Stage{src.Stage})...)
			} else {
				got = append(got, "image "+src.Image)
			}
		}
	}
	if !equal(got, names) {
		t.Errorf("COPY --from resolved to %q, want %q", got, names)
	}
}

func wantEnv(t *testing.T, env []string, key, want string) {
	t.Helper()
	if got, ok := lookup(env, key); !ok || got != want {
		t.Errorf("%s = %q (set once: %v), want %q in %q", key, got, ok, want, env)
	}
}

func wantUnset(t *testing.T, env []string, key string) {
	t.Helper()
	if got, ok := lookup(env, key); ok || got != "" {
		t.Errorf("%s is set (%q) in %q", key, got, env)
	}
}
