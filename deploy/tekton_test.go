package deploy_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"
)

// tektonSamples are values for the Task parameters without a default and
// for the results of pipeline tasks, in the form the real ones have.
var tektonSamples = map[string]string{
	"params.IMAGE":                     "harbor.example.com/team/app:1.0.0",
	"tasks.clone.results.commit":       "3f786850e387550fdab836ed7e6dc881de23001b",
	"tasks.build.results.IMAGE_DIGEST": "sha256:" + strings.Repeat("ab", 32),
}

// tekton are the Tekton resources of deploy/, by name.
type tekton struct {
	tasks     map[string]*pipelinev1.Task
	pipelines map[string]*pipelinev1.Pipeline
	runs      []*pipelinev1.PipelineRun
}

func loadTekton(t *testing.T) *tekton {
	t.Helper()
	tk := &tekton{tasks: map[string]*pipelinev1.Task{}, pipelines: map[string]*pipelinev1.Pipeline{}}
	ctx := context.Background()
	for _, f := range deployFiles(t, kindTekton) {
		for _, obj := range decodeObjects(t, f) {
			switch o := obj.(type) {
			case *pipelinev1.Task:
				o.SetDefaults(ctx)
				if err := o.Validate(ctx); err != nil {
					t.Errorf("%s: Task %q: %v", f, o.Name, err)
				}
				tk.tasks[o.Name] = o
			case *pipelinev1.Pipeline:
				o.SetDefaults(ctx)
				if err := o.Validate(ctx); err != nil {
					t.Errorf("%s: Pipeline %q: %v", f, o.Name, err)
				}
				tk.pipelines[o.Name] = o
			case *pipelinev1.PipelineRun:
				if o.Name == "" {
					// The API server names it before validation.
					o.Name = o.GenerateName + "test"
				}
				o.SetDefaults(ctx)
				if err := o.Validate(ctx); err != nil {
					t.Errorf("%s: PipelineRun %q: %v", f, o.Name, err)
				}
				tk.runs = append(tk.runs, o)
			default:
				t.Errorf("%s: %T: not a Tekton Task, Pipeline or PipelineRun", f, obj)
			}
		}
	}
	return tk
}

// TestTekton decodes the Tekton resources strictly and validates them as
// Tekton's admission webhook does, then checks each Task with its defaults
// and each PipelineRun → Pipeline → Task chain.
func TestTekton(t *testing.T) {
	tk := loadTekton(t)
	if len(tk.tasks) == 0 || len(tk.runs) == 0 {
		t.Fatal("want a Task and a PipelineRun")
	}
	for _, task := range tk.tasks {
		t.Run("Task/"+task.Name, func(t *testing.T) {
			checkTask(t, task)
		})
	}
	for _, run := range tk.runs {
		t.Run("PipelineRun/"+run.Name, func(t *testing.T) {
			tk.checkRun(t, run)
		})
	}
}

// checkTask checks a Task with its defaults: the kiln step's security
// context and command line, the docker config workspace.
func checkTask(t *testing.T, task *pipelinev1.Task) {
	params := map[string]paramValue{}
	for _, p := range task.Spec.Params {
		switch {
		case p.Default != nil:
			params[p.Name] = defaultValue(p)
		case tektonSamples["params."+p.Name] != "":
			params[p.Name] = paramValue{str: tektonSamples["params."+p.Name]}
		default:
			t.Fatalf("param %q: no default and no sample value", p.Name)
		}
	}
	if n := checkTaskSteps(t, task, params); n == 0 {
		t.Errorf("no kiln step")
	}
	for _, w := range task.Spec.Workspaces {
		if w.Name == "dockerconfig" && (w.MountPath != "/kiln/.docker" || !w.ReadOnly) {
			t.Errorf("workspace %q: mount it read-only at /kiln/.docker", w.Name)
		}
	}
}

// checkRun checks a PipelineRun → Pipeline → Task chain: the references,
// parameters and workspaces match, and the kiln command line the run ends
// up with parses.
func (tk *tekton) checkRun(t *testing.T, run *pipelinev1.PipelineRun) {
	p := tk.pipelines[run.Spec.PipelineRef.Name]
	if p == nil {
		t.Fatalf("pipelineRef %q: no such Pipeline in deploy/", run.Spec.PipelineRef.Name)
	}
	vars := map[string]string{}
	given := map[string]string{}
	for _, param := range run.Spec.Params {
		given[param.Name] = param.Value.StringVal
	}
	for _, ps := range p.Spec.Params {
		v, ok := given[ps.Name]
		if !ok && ps.Default == nil {
			t.Errorf("Pipeline param %q: the run gives no value", ps.Name)
		}
		if !ok && ps.Default != nil {
			v = ps.Default.StringVal
		}
		vars["params."+ps.Name] = v
		delete(given, ps.Name)
	}
	for n := range given {
		t.Errorf("param %q: not a param of Pipeline %q", n, p.Name)
	}
	checkWorkspaceBindings(t, run, p)
	for k, v := range tektonSamples {
		if strings.HasPrefix(k, "tasks.") {
			vars[k] = v
		}
	}
	// The results of this file's Tasks are the ones they declare (with the
	// samples' values where there are some); a remote Task's come from the
	// samples.
	for _, pt := range p.Spec.Tasks {
		if pt.TaskRef == nil || pt.TaskRef.Resolver != "" || tk.tasks[pt.TaskRef.Name] == nil {
			continue
		}
		prefix := "tasks." + pt.Name + ".results."
		for k := range vars {
			if strings.HasPrefix(k, prefix) {
				delete(vars, k)
			}
		}
		for _, r := range tk.tasks[pt.TaskRef.Name].Spec.Results {
			v := tektonSamples[prefix+r.Name]
			if v == "" {
				v = "sample-" + strings.ToLower(r.Name)
			}
			vars[prefix+r.Name] = v
		}
	}
	kiln := 0
	for _, pt := range p.Spec.Tasks {
		if pt.TaskRef == nil || pt.TaskRef.Resolver != "" {
			continue // a remote Task, e.g. the catalog's git-clone
		}
		task := tk.tasks[pt.TaskRef.Name]
		if task == nil {
			t.Errorf("task %q: taskRef %q: no such Task in deploy/", pt.Name, pt.TaskRef.Name)
			continue
		}
		kiln += checkPipelineTask(t, p, &pt, task, vars)
	}
	if kiln == 0 {
		t.Errorf("Pipeline %q runs no kiln step", p.Name)
	}
	for _, r := range p.Spec.Results {
		if _, err := substitute(r.Value.StringVal, vars); err != nil {
			t.Errorf("result %q: %v", r.Name, err)
		}
	}
}

// checkWorkspaceBindings checks that a run binds every workspace the
// Pipeline needs, and the registry Secret as config.json.
func checkWorkspaceBindings(t *testing.T, run *pipelinev1.PipelineRun, p *pipelinev1.Pipeline) {
	t.Helper()
	bound := map[string]bool{}
	for _, b := range run.Spec.Workspaces {
		bound[b.Name] = true
		if b.Secret != nil {
			checkDockerConfigItems(t, "workspace "+b.Name, b.Secret.Items)
		}
	}
	for _, w := range p.Spec.Workspaces {
		if !w.Optional && !bound[w.Name] {
			t.Errorf("workspace %q of Pipeline %q: not bound", w.Name, p.Name)
		}
		delete(bound, w.Name)
	}
	for n := range bound {
		t.Errorf("workspace %q: not a workspace of Pipeline %q", n, p.Name)
	}
}

// checkPipelineTask checks a pipeline task against its Task and returns how
// many kiln steps it runs.
func checkPipelineTask(t *testing.T, p *pipelinev1.Pipeline, pt *pipelinev1.PipelineTask, task *pipelinev1.Task, vars map[string]string) int {
	t.Helper()
	declared := map[string]pipelinev1.ParamSpec{}
	values := map[string]paramValue{}
	for _, ps := range task.Spec.Params {
		declared[ps.Name] = ps
		if ps.Default != nil {
			values[ps.Name] = defaultValue(ps)
		}
	}
	for _, param := range pt.Params {
		ps, ok := declared[param.Name]
		if !ok {
			t.Errorf("task %q: param %q: not a param of Task %q", pt.Name, param.Name, task.Name)
			continue
		}
		if param.Value.Type != ps.Type {
			t.Errorf("task %q: param %q: a %s for a %s", pt.Name, param.Name, param.Value.Type, ps.Type)
		}
		v := paramValue{array: ps.Type == pipelinev1.ParamTypeArray}
		var err error
		if v.str, err = substitute(param.Value.StringVal, vars); err != nil {
			t.Errorf("task %q: param %q: %v", pt.Name, param.Name, err)
		}
		for _, a := range param.Value.ArrayVal {
			s, err := substitute(a, vars)
			if err != nil {
				t.Errorf("task %q: param %q: %v", pt.Name, param.Name, err)
			}
			v.list = append(v.list, s)
		}
		values[param.Name] = v
	}
	for _, ps := range task.Spec.Params {
		if _, ok := values[ps.Name]; !ok {
			t.Errorf("task %q: Task %q param %q: no value", pt.Name, task.Name, ps.Name)
		}
	}
	pipelineWorkspaces := map[string]bool{}
	for _, w := range p.Spec.Workspaces {
		pipelineWorkspaces[w.Name] = true
	}
	for _, b := range pt.Workspaces {
		if !pipelineWorkspaces[b.Workspace] {
			t.Errorf("task %q: workspace %q: not a workspace of Pipeline %q", pt.Name, b.Workspace, p.Name)
		}
		if !slices.ContainsFunc(task.Spec.Workspaces, func(w pipelinev1.WorkspaceDeclaration) bool { return w.Name == b.Name }) {
			t.Errorf("task %q: workspace %q: not a workspace of Task %q", pt.Name, b.Name, task.Name)
		}
	}
	return checkTaskSteps(t, task, values)
}

// paramValue is a Task parameter's value.
type paramValue struct {
	str   string
	list  []string
	array bool
}

func defaultValue(ps pipelinev1.ParamSpec) paramValue {
	return paramValue{str: ps.Default.StringVal, list: ps.Default.ArrayVal, array: ps.Type == pipelinev1.ParamTypeArray}
}

// checkTaskSteps checks the kiln steps of a Task with the given parameter
// values and returns how many there are.
func checkTaskSteps(t *testing.T, task *pipelinev1.Task, params map[string]paramValue) int {
	t.Helper()
	vars := map[string]string{}
	arrays := map[string][]string{}
	for n, v := range params {
		if v.array {
			arrays["params."+n+"[*]"] = v.list
		} else {
			vars["params."+n] = v.str
		}
	}
	for _, w := range task.Spec.Workspaces {
		vars["workspaces."+w.Name+".path"] = w.GetMountPath()
	}
	for _, r := range task.Spec.Results {
		vars["results."+r.Name+".path"] = "/tekton/results/" + r.Name
	}
	// written are the result files the steps write.
	written := map[string]bool{}
	kiln := 0
	for _, step := range task.Spec.Steps {
		image, err := substitute(step.Image, vars)
		if err != nil {
			t.Errorf("step %q: image: %v", step.Name, err)
			continue
		}
		if step.Script != "" {
			kiln += checkScriptStep(t, step, image, vars, written)
			continue
		}
		if !isKilnImage(image) {
			continue
		}
		kiln++
		if !kilnImages[image] {
			t.Errorf("step %q: image %q: use the release's, one of %v", step.Name, image, sortedKeys(kilnImages))
		}
		checkKilnStepSecurity(t, step)
		if len(step.Command) == 0 {
			t.Errorf("step %q: name kiln's command (the executor image has no shell for a script)", step.Name)
			continue
		}
		var argv []string
		for _, a := range append(append([]string{}, step.Command...), step.Args...) {
			if list, ok := arrays[strings.TrimSuffix(strings.TrimPrefix(a, "$("), ")")]; ok {
				argv = append(argv, list...)
				continue
			}
			s, err := substitute(a, vars)
			if err != nil {
				t.Errorf("step %q: %v", step.Name, err)
			}
			argv = append(argv, s)
		}
		if ok, err := isKilnProgram(argv[0]); !ok || err != nil {
			t.Errorf("step %q: command %q: not kiln (%v)", step.Name, argv[0], err)
			continue
		}
		if err := deployChecker(nil).check(argv); err != nil {
			t.Errorf("step %q: %q: %v", step.Name, strings.Join(argv, " "), err)
		}
		// A result file is written by a flag naming it (--digest-file=PATH).
		for _, a := range argv {
			if _, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(a, "--") {
				written[v] = true
			}
		}
	}
	results := map[string]bool{}
	for _, r := range task.Spec.Results {
		results[r.Name] = true
		if p := vars["results."+r.Name+".path"]; !written[p] {
			t.Errorf("result %q: no step writes %s", r.Name, p)
		}
	}
	// Tekton Chains signs and records the image a Task names in these two
	// results.
	if kiln > 0 && (!results["IMAGE_URL"] || !results["IMAGE_DIGEST"]) {
		t.Errorf("Task %q pushes an image: declare the results IMAGE_URL and IMAGE_DIGEST (what Tekton Chains reads)", task.Name)
	}
	return kiln
}

// checkKilnStepSecurity checks the security context of a step that runs
// kiln.
func checkKilnStepSecurity(t *testing.T, step pipelinev1.Step) {
	t.Helper()
	sc := step.SecurityContext
	if sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != 0 {
		t.Errorf("step %q: RUN steps need runAsUser: 0, state it", step.Name)
	}
	if sc != nil && ((sc.Privileged != nil && *sc.Privileged) || (sc.Capabilities != nil && len(sc.Capabilities.Add) > 0)) {
		t.Errorf("step %q: kiln needs no privilege nor added capability", step.Name)
	}
}

// checkScriptStep checks a step that runs a script: in kiln's images only
// the debug one has a shell, values come through the environment rather
// than the script's text, and its kiln command lines parse. It records the
// files the script writes and returns how many kiln command lines it has.
func checkScriptStep(t *testing.T, step pipelinev1.Step, image string, vars map[string]string, written map[string]bool) int {
	t.Helper()
	if isKilnImage(image) && image != kilnDebugImage {
		t.Errorf("step %q: image %q has no shell: a script needs %s", step.Name, image, kilnDebugImage)
	}
	if isKilnImage(image) && !strings.HasPrefix(step.Script, "#!/busybox/sh\n") {
		t.Errorf("step %q: kiln's debug image has no /bin/sh: begin the script with #!/busybox/sh", step.Name)
	}
	if strings.Contains(step.Script, "$(params.") {
		t.Errorf("step %q: a parameter in the script's text is run as code: pass it in env", step.Name)
	}
	script, err := substitute(step.Script, vars)
	if err != nil {
		t.Errorf("step %q: %v", step.Name, err)
		return 0
	}
	env := map[string]string{}
	for _, e := range step.Env {
		if env[e.Name], err = substitute(e.Value, vars); err != nil {
			t.Errorf("step %q: env %s: %v", step.Name, e.Name, err)
		}
	}
	n := deployChecker(env).checkScript(t, "step "+step.Name, script)
	if n > 0 {
		checkKilnStepSecurity(t, step)
	}
	outs, err := redirectTargets(script, env)
	if err != nil {
		t.Errorf("step %q: %v", step.Name, err)
	}
	for _, o := range outs {
		written[o] = true
	}
	return n
}

// redirectTargets returns the files a shell script redirects output to
// (> and >>), expanded in env.
func redirectTargets(script string, env map[string]string) ([]string, error) {
	file, err := syntax.NewParser(syntax.Variant(syntax.LangPOSIX)).Parse(strings.NewReader(script), "")
	if err != nil {
		return nil, err
	}
	cfg := &expand.Config{Env: mapEnviron(env, false), NoUnset: true}
	var outs []string
	var errs []error
	syntax.Walk(file, func(n syntax.Node) bool {
		if r, ok := n.(*syntax.Redirect); ok && (r.Op == syntax.RdrOut || r.Op == syntax.AppOut) {
			f, err := expand.Literal(cfg, r.Word)
			if err != nil {
				errs = append(errs, err)
			}
			outs = append(outs, f)
		}
		return true
	})
	return outs, errors.Join(errs...)
}

var tektonVar = regexp.MustCompile(`\$\(([^)]*)\)`)

// substitute replaces Tekton's $(...) references; an unknown one is an
// error.
func substitute(s string, vars map[string]string) (string, error) {
	var missing []string
	out := tektonVar.ReplaceAllStringFunc(s, func(ref string) string {
		key := tektonVar.FindStringSubmatch(ref)[1]
		v, ok := vars[key]
		if !ok {
			missing = append(missing, ref)
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("%q: unknown %s", s, strings.Join(missing, ", "))
	}
	return out, nil
}
