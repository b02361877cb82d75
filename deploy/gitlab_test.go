package deploy_test

import (
	"fmt"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"
)

// gitlabPredefined are values for the predefined variables the files use,
// as GitLab sets them in a branch pipeline of the default branch.
var gitlabPredefined = map[string]string{
	"CI_PROJECT_DIR":       "/builds/team/app",
	"CI_PROJECT_URL":       "https://gitlab.example.com/team/app",
	"CI_REGISTRY":          "registry.gitlab.example.com",
	"CI_REGISTRY_IMAGE":    "registry.gitlab.example.com/team/app",
	"CI_REGISTRY_USER":     "gitlab-ci-token",
	"CI_REGISTRY_PASSWORD": "job-token",
	"CI_COMMIT_SHA":        "3f786850e387550fdab836ed7e6dc881de23001b",
	"CI_COMMIT_SHORT_SHA":  "3f786850",
	"CI_COMMIT_BRANCH":     "main",
	"CI_COMMIT_REF_SLUG":   "main",
	"CI_DEFAULT_BRANCH":    "main",
}

// gitlabSettingsVariables are variables a project defines in its CI/CD
// settings (masked secrets, never in the file), with sample values. A file
// that uses one names it in its comments, for the reader to set it.
var gitlabSettingsVariables = map[string]string{
	"SWR_AK": "HPUAEXAMPLEACCESSKEY",
	"SWR_SK": "example-secret-access-key",
}

// TestGitLabPipelines loads each GitLab CI file with its includes, checks
// that its jobs agree with each other and parses every kiln command line of
// every job, in each variant of its variables (matrix, rules).
func TestGitLabPipelines(t *testing.T) {
	for _, f := range deployFiles(t, kindGitLab) {
		t.Run(f, func(t *testing.T) {
			p, err := loadGitLabPipeline(f, os.ReadFile)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Stages) == 0 {
				t.Errorf("no stages: declare them")
			}
			rule := ruleFor(f)
			text := readFile(t, f)
			commands := 0
			for _, name := range sortedKeys(p.Jobs) {
				job := p.Jobs[name]
				if !strings.HasPrefix(name, ".") {
					p.checkJob(t, name, job)
				}
				commands += p.checkJobCommands(t, rule, name, job)
				for v := range gitlabSettingsVariables {
					used := regexp.MustCompile(`\$\{?` + v + `\b`)
					if used.MatchString(strings.Join(job.Script, "\n")) && !regexp.MustCompile(`(?m)^#.*\b`+v+`\b`).MatchString(text) {
						t.Errorf("job %q uses %s, a CI/CD settings variable: say in the file's comments what to set it to", name, v)
					}
				}
			}
			if commands == 0 {
				t.Errorf("no kiln command line")
			}
		})
	}
}

// checkJob checks a visible job against the rest of the pipeline.
func (p *gitlabPipeline) checkJob(t *testing.T, name string, job *gitlabJob) {
	t.Helper()
	stage := slices.Index(p.Stages, job.Stage)
	if stage < 0 {
		t.Errorf("job %q: stage %q is not in stages %v", name, job.Stage, p.Stages)
	}
	if len(job.Script) == 0 {
		t.Errorf("job %q: no script", name)
	}
	if job.Image == nil || job.Image.Name == "" {
		t.Errorf("job %q: no image: the runner's default is anyone's guess", name)
	} else if isKilnImage(job.Image.Name) {
		if job.Image.Name != kilnDebugImage {
			t.Errorf("job %q: image %q: jobs need the debug image, which has a shell", name, job.Image.Name)
		}
		if !slices.Equal(job.Image.Entrypoint, []string{""}) {
			t.Errorf("job %q: kiln's image: set entrypoint [\"\"] so that the runner's shell runs the script", name)
		}
	}
	for _, need := range job.Needs {
		other, ok := p.Jobs[need.Job]
		switch {
		case !ok || strings.HasPrefix(need.Job, "."):
			t.Errorf("job %q: needs %q: no such job", name, need.Job)
		case slices.Index(p.Stages, other.Stage) > stage:
			t.Errorf("job %q: needs %q of a later stage", name, need.Job)
		case need.wantsArtifacts() && other.Artifacts == nil:
			t.Errorf("job %q: needs the artifacts of %q, which has none", name, need.Job)
		}
	}
	if a := job.Artifacts; a != nil {
		paths := slices.Clone(a.Paths)
		if a.Reports != nil && a.Reports.Dotenv != "" {
			paths = append(paths, a.Reports.Dotenv)
		}
		for _, ap := range paths {
			if path.IsAbs(ap) || strings.HasPrefix(path.Clean(ap), "..") {
				t.Errorf("job %q: artifact %q: must lie in the project directory", name, ap)
			}
		}
	}
	for _, r := range job.Rules {
		if r.If == "" {
			t.Errorf("job %q: rule without if", name)
		}
	}
}

// checkJobCommands parses the kiln command lines of a job's script in each
// variant of its variables, checks that a dotenv report is written by the
// script, and returns how many kiln command lines it has.
func (p *gitlabPipeline) checkJobCommands(t *testing.T, rule fileRule, name string, job *gitlabJob) int {
	t.Helper()
	envs, err := p.environments(job)
	if err != nil {
		t.Errorf("job %q: %v", name, err)
		return 0
	}
	commands := 0
	for _, env := range envs {
		checker := deployChecker(env).withRule(rule)
		for i, line := range job.Script {
			commands += checker.checkScript(t, fmt.Sprintf("job %q: script[%d]", name, i), line)
		}
		if rule.loginInJob && !strings.HasPrefix(name, ".") {
			// The lines run in one shell, in order. (Hidden jobs, from
			// included templates, do not run.)
			cmds, err := checker.commands(strings.Join(job.Script, "\n"))
			if err == nil {
				err = pushLogins(cmds)
			}
			if err != nil {
				t.Errorf("job %q: %v", name, err)
			}
		}
		if job.Artifacts != nil && job.Artifacts.Reports != nil && job.Artifacts.Reports.Dotenv != "" {
			dotenv := path.Join(env["CI_PROJECT_DIR"], job.Artifacts.Reports.Dotenv)
			if !slices.Contains(scriptOutputs(t, job.Script, env), dotenv) {
				t.Errorf("job %q: dotenv report %q: the script writes no such file", name, job.Artifacts.Reports.Dotenv)
			}
		}
	}
	return commands
}

// environments are the variables a job's script may see: the predefined
// ones, the global and job variables and, for each combination of its
// matrix and each of its rules, theirs.
func (p *gitlabPipeline) environments(job *gitlabJob) ([]map[string]string, error) {
	base := map[string]string{}
	for _, vars := range []map[string]string{gitlabPredefined, gitlabSettingsVariables, p.Variables, job.Variables} {
		for k, v := range vars {
			base[k] = v
		}
	}
	variants := []map[string]string{base}
	if job.Parallel != nil {
		variants = nil
		for _, entry := range job.Parallel.Matrix {
			combos := []map[string]string{{}}
			for _, name := range sortedKeys(entry) {
				var next []map[string]string
				for _, c := range combos {
					for _, v := range entry[name] {
						n := map[string]string{name: v}
						for k, v := range c {
							n[k] = v
						}
						next = append(next, n)
					}
				}
				combos = next
			}
			for _, c := range combos {
				variants = append(variants, overlay(base, c))
			}
		}
	}
	var envs []map[string]string
	for _, v := range variants {
		if len(job.Rules) == 0 {
			envs = append(envs, v)
		}
		for _, r := range job.Rules {
			envs = append(envs, overlay(v, r.Variables))
		}
	}
	for i, env := range envs {
		resolved, err := resolveVariables(env)
		if err != nil {
			return nil, err
		}
		envs[i] = resolved
	}
	return envs, nil
}

func overlay(base, over map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}

// scriptOutputs returns the files a script's lines redirect output to,
// relative paths joined to CI_PROJECT_DIR where jobs start.
func scriptOutputs(t *testing.T, script []string, env map[string]string) []string {
	t.Helper()
	var pairs []string
	for k, v := range env {
		pairs = append(pairs, k+"="+v)
	}
	cfg := &expand.Config{Env: expand.ListEnviron(pairs...)}
	var outs []string
	for _, line := range script {
		file, err := syntax.NewParser(syntax.Variant(syntax.LangPOSIX)).Parse(strings.NewReader(line), "")
		if err != nil {
			t.Errorf("%q: %v", line, err)
			continue
		}
		syntax.Walk(file, func(n syntax.Node) bool {
			if r, ok := n.(*syntax.Redirect); ok && (r.Op == syntax.RdrOut || r.Op == syntax.AppOut) {
				if f, err := expand.Literal(cfg, r.Word); err == nil {
					if !path.IsAbs(f) {
						f = path.Join(env["CI_PROJECT_DIR"], f)
					}
					outs = append(outs, path.Clean(f))
				}
			}
			return true
		})
	}
	return outs
}

// TestGitLabModel shows that the model rejects what GitLab would, and
// merges includes and extends as GitLab does.
func TestGitLabModel(t *testing.T) {
	files := map[string]string{
		"../t/base.yml": `
stages: [a, b]
variables: {X: "1"}
.base:
  image: {name: img, entrypoint: [""]}
  variables: {A: "a", B: "b"}
  script: [one]
`,
		"main.yml": `
include:
  - local: t/base.yml
stages: [a, b, c]
job:
  extends: .base
  stage: b
  variables: {B: "b2"}
  script: [two]
`,
	}
	read := func(p string) ([]byte, error) {
		if s, ok := files[p]; ok {
			return []byte(s), nil
		}
		return nil, os.ErrNotExist
	}
	p, err := loadGitLabPipeline("main.yml", read)
	if err != nil {
		t.Fatal(err)
	}
	job := p.Jobs["job"]
	if !slices.Equal(p.Stages, []string{"a", "b", "c"}) || p.Variables["X"] != "1" || job == nil ||
		job.Image.Name != "img" || job.Variables["A"] != "a" || job.Variables["B"] != "b2" || !slices.Equal(job.Script, []string{"two"}) {
		t.Errorf("merged pipeline %+v, job %+v", p, job)
	}
	for name, bad := range map[string]string{
		"unknown keyword":   "job: {stage: a, scirpt: [x]}",
		"wrong type":        "job: {stage: a, script: x}",
		"duplicate key":     "job: {stage: a}\njob: {stage: b}",
		"keyword as job":    "image: {stage: a, script: [x]}",
		"unknown image key": "job: {image: {name: x, entry: [x]}}",
		"missing include":   "include: [{local: nope.yml}]",
		"remote include":    "include: [{remote: 'https://example.com/x.yml'}]",
		"extends unknown":   "job: {extends: .nope}",
		"extends loop":      ".a: {extends: .b}\n.b: {extends: .a}",
	} {
		files["bad.yml"] = bad
		if _, err := loadGitLabPipeline("bad.yml", read); err == nil {
			t.Errorf("%s: accepted", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	if _, err := resolveVariables(map[string]string{"A": "$B-x", "B": "$C"}); err == nil {
		t.Errorf("undefined variable: accepted")
	}
	vars, err := resolveVariables(map[string]string{"A": "$B-x", "B": "${C}y", "C": "c"})
	if err != nil || vars["A"] != "cy-x" {
		t.Errorf("resolved %v, %v", vars, err)
	}
}
