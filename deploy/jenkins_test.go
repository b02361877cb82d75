package deploy_test

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"

	"github.com/kiln-build/kiln/pkg/cli"
)

// jenkinsJobs maps the Jenkins jobs the pipelines start to the Jenkinsfile
// each runs (the job's script path).
var jenkinsJobs = map[string]string{
	"app-build":  "jenkins/chained/build.Jenkinsfile",
	"app-image":  "jenkins/chained/image.Jenkinsfile",
	"app-deploy": "jenkins/chained/deploy.Jenkinsfile",
}

// jenkinsPodTemplates are the pod templates kept in Jenkins' cloud
// configuration, by label, and the file pasted into their "Raw YAML for the
// Pod" field (jenkins/README.md).
var jenkinsPodTemplates = map[string]string{
	"kiln":           "deploy/jenkins/pod.yaml",
	"kiln-freestyle": "deploy/jenkins/freestyle/pod.yaml",
}

// jenkinsBuiltins are values for the environment variables Jenkins and its
// git plugin set in sh steps.
var jenkinsBuiltins = map[string]string{
	"WORKSPACE":    "/home/jenkins/agent/workspace/app",
	"GIT_COMMIT":   "3f786850e387550fdab836ed7e6dc881de23001b",
	"BUILD_NUMBER": "42",
	"JOB_NAME":     "app",
}

// jenkinsfile is what the tests read from a declarative Jenkinsfile.
type jenkinsfile struct {
	path        string
	src         *groovySource
	pods        map[string]*corev1.Pod // yamlFile of its kubernetes agents, or a label's template
	environment map[string]string      // environment { NAME = 'literal' }
	credentials map[string]string      // variables bound by withCredentials, with samples
	params      []string               // parameters { string(name: ...) }
	axes        map[string][]string    // matrix axes
	shSteps     []shStep
}

// shStep is the script of an sh step.
type shStep struct {
	script   string
	inMatrix bool // runs once per combination of the matrix axes
}

var (
	reYAMLFile     = regexp.MustCompile(`\byamlFile\s+(«\d+»)`)
	reShStep       = regexp.MustCompile(`\bsh\s*(?:\(\s*(?:script:\s*)?)?(«\d+»)`)
	reShWord       = regexp.MustCompile(`\bsh\b`)
	reEnvEntry     = regexp.MustCompile(`^(\w+)\s*=\s*(«\d+»)$`)
	reParam        = regexp.MustCompile(`\b(\w+)\(\s*name:\s*(«\d+»)`)
	reAxis         = regexp.MustCompile(`\baxis\s*\{\s*name\s+(«\d+»)\s+values\s+((?:«\d+»\s*,?\s*)+)\}`)
	reContainer    = regexp.MustCompile(`\bcontainer\(([^)]*)\)`)
	reDefaultCont  = regexp.MustCompile(`\bdefaultContainer\s+(«\d+»)`)
	reNamedArg     = regexp.MustCompile(`(\w+):\s*(«\d+»)`)
	reBuildJob     = regexp.MustCompile(`\bbuild\s+job:\s*(«\d+»)[^\[]*parameters:\s*\[([^\]]*)\]`)
	reCopyArtPerm  = regexp.MustCompile(`\bcopyArtifactPermission\(\s*(«\d+»)\s*\)`)
	reBuildJobWord = regexp.MustCompile(`\bbuild\s+job:`)
	reAgentLabel   = regexp.MustCompile(`\bagent\s*\{\s*label\s+(«\d+»)\s*\}`)
	reCredential   = regexp.MustCompile(`\b(usernamePassword|string|file)\(([^)]*credentialsId:[^)]*)\)`)
)

func loadJenkinsfile(t *testing.T, path string) *jenkinsfile {
	t.Helper()
	src, err := lexGroovy(readFile(t, path))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	j := &jenkinsfile{path: path, src: src, pods: map[string]*corev1.Pod{}, environment: map[string]string{},
		credentials: map[string]string{}, axes: map[string][]string{}}
	var podFiles []string
	for _, m := range reYAMLFile.FindAllStringSubmatch(src.code, -1) {
		podFiles = append(podFiles, src.str(m[1]).value)
	}
	for _, m := range reAgentLabel.FindAllStringSubmatch(src.code, -1) {
		label := src.str(m[1]).value
		file, ok := jenkinsPodTemplates[label]
		if !ok {
			t.Errorf("%s: agent label %q: no pod template of jenkinsPodTemplates has it", path, label)
			continue
		}
		podFiles = append(podFiles, file)
	}
	for _, m := range reCredential.FindAllStringSubmatch(src.code, -1) {
		args := map[string]string{}
		for _, a := range reNamedArg.FindAllStringSubmatch(m[2], -1) {
			args[a[1]] = src.str(a[2]).value
		}
		for _, k := range []string{"usernameVariable", "passwordVariable", "variable"} {
			if v := args[k]; v != "" {
				j.credentials[v] = "sample-" + strings.ToLower(v)
			}
		}
	}
	for _, file := range podFiles {
		p := fromRepoRoot(t, path+": yamlFile", file)
		if p == "" {
			continue
		}
		objs := decodeObjects(t, p)
		pod, ok := objs[0].(*corev1.Pod)
		if len(objs) != 1 || !ok {
			t.Errorf("%s: yamlFile %q: want one Pod", path, file)
			continue
		}
		j.pods[file] = pod
	}
	env, _, _, err := src.block(`\benvironment`)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, line := range strings.Split(env, "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		m := reEnvEntry.FindStringSubmatch(line)
		if m == nil || src.str(m[2]).gstring {
			t.Errorf("%s: environment: %q: only NAME = 'literal' entries are checked", path, line)
			continue
		}
		j.environment[m[1]] = src.str(m[2]).value
	}
	params, _, _, err := src.block(`\bparameters`)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, m := range reParam.FindAllStringSubmatch(params, -1) {
		if m[1] != "string" {
			t.Errorf("%s: parameter type %s: only string parameters are checked", path, m[1])
		}
		j.params = append(j.params, src.str(m[2]).value)
	}
	for _, m := range reAxis.FindAllStringSubmatch(src.code, -1) {
		axis := src.str(m[1]).value
		for _, v := range stringRef.FindAllString(m[2], -1) {
			j.axes[axis] = append(j.axes[axis], src.str(v).value)
		}
	}
	_, matrixStart, matrixEnd, err := src.block(`\bmatrix`)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	steps := reShStep.FindAllStringSubmatchIndex(src.code, -1)
	if n := len(reShWord.FindAllString(src.code, -1)); n != len(steps) {
		t.Errorf("%s: %d sh steps, %d readable: write them as sh '''...'''", path, n, len(steps))
	}
	for _, m := range steps {
		s := src.str(src.code[m[2]:m[3]])
		if s.gstring {
			t.Errorf("%s: sh step in double quotes: use single quotes, so that the shell expands the variables, not Groovy", path)
			continue
		}
		j.shSteps = append(j.shSteps, shStep{script: s.value, inMatrix: m[0] > matrixStart && m[0] < matrixEnd})
	}
	return j
}

// environments are the environments an sh step may run in: Jenkins'
// variables, the environment block, the parameters and, in a matrix, each
// combination of its axes.
func (j *jenkinsfile) environments(step shStep) []map[string]string {
	base := map[string]string{}
	for k, v := range jenkinsBuiltins {
		base[k] = v
	}
	for k, v := range j.environment {
		base[k] = v
	}
	for k, v := range j.credentials {
		base[k] = v
	}
	for _, p := range j.params {
		base[p] = "sample-" + strings.ToLower(strings.ReplaceAll(p, "_", "-"))
	}
	envs := []map[string]string{base}
	if !step.inMatrix {
		return envs
	}
	for _, axis := range sortedKeys(j.axes) {
		var next []map[string]string
		for _, env := range envs {
			for _, v := range j.axes[axis] {
				e := map[string]string{axis: v}
				for k, v := range env {
					e[k] = v
				}
				next = append(next, e)
			}
		}
		envs = next
	}
	return envs
}

// container returns the container named in the file's agent pods.
func (j *jenkinsfile) container(name string) *corev1.Container {
	for _, file := range sortedKeys(j.pods) {
		for i, c := range j.pods[file].Spec.Containers {
			if c.Name == name {
				return &j.pods[file].Spec.Containers[i]
			}
		}
	}
	return nil
}

// TestJenkinsfiles checks each Jenkinsfile: its pod templates exist, the
// containers its steps use are in them with the shell they need, its kiln
// command lines parse, and the jobs it starts get the parameters they
// declare.
func TestJenkinsfiles(t *testing.T) {
	for _, path := range deployFiles(t, kindJenkinsfile) {
		t.Run(path, func(t *testing.T) {
			j := loadJenkinsfile(t, path)
			if len(j.pods) == 0 {
				t.Fatalf("no kubernetes agent: a yamlFile, or a label of jenkinsPodTemplates")
			}
			rule := ruleFor(path)
			// The agent (user 1000) and a root kiln share the workspace.
			for file, pod := range j.pods {
				rootKiln := false
				for _, c := range pod.Spec.Containers {
					rootKiln = rootKiln || (isKilnImage(c.Image) && c.SecurityContext != nil && c.SecurityContext.RunAsUser != nil && *c.SecurityContext.RunAsUser == 0)
				}
				if sc := pod.Spec.SecurityContext; rootKiln && (sc == nil || sc.FSGroup == nil || *sc.FSGroup == 0) {
					t.Errorf("%s: set securityContext.fsGroup to the agent's group (1000), so that the workspace stays the agent's (jenkins/README.md)", file)
				}
			}
			kilnSteps := j.checkContainers(t)
			kilnCommands := 0
			for i, step := range j.shSteps {
				where := fmt.Sprintf("sh step %d", i+1)
				for _, env := range j.environments(step) {
					checker := deployChecker(env).withRule(rule)
					kilnCommands += checker.checkScript(t, where, step.script)
					cmds, err := checker.commands(step.script)
					if err != nil {
						continue // reported by checkScript
					}
					checkWorkspaceOwner(t, where, step.script, cmds, env)
					if rule.loginInJob {
						if err := pushLogins(cmds); err != nil {
							t.Errorf("%s: %v", where, err)
						}
					}
				}
				checkShebangScript(t, where, step.script)
			}
			if kilnSteps > 0 && kilnCommands == 0 {
				t.Errorf("steps in a kiln container, but no kiln command")
			}
			j.checkJobCalls(t)
		})
	}
}

// outputFlags are the flags with which kiln writes files.
var outputFlags = []string{"digest-file", "image-name-with-digest-file", "image-name-tag-with-digest-file", "tar-path", "oci-layout-path"}

// checkWorkspaceOwner checks that a script whose kiln (root, in the kiln
// container) writes files into the shared workspace gives them to the
// workspace's owner, the agent's user, with chown.
func checkWorkspaceOwner(t *testing.T, where, script string, cmds [][]string, env map[string]string) {
	t.Helper()
	ws := env["WORKSPACE"]
	var written []string
	for _, argv := range cmds {
		args := argv[1:]
		if kilnBinaries[argv[0]] && (len(args) == 0 || args[0] != "version") {
			args = append([]string{"build"}, args...)
		}
		cmd, rest, err := cli.NewRootCommand().Find(args)
		if err != nil || cmd.Name() != "build" || cmd.ParseFlags(rest) != nil {
			continue
		}
		for _, f := range outputFlags {
			if v, _ := cmd.Flags().GetString(f); v != "" && strings.HasPrefix(v, ws+"/") {
				written = append(written, v)
			}
		}
	}
	if len(written) == 0 {
		return
	}
	chowned := map[string]bool{}
	file, err := syntax.NewParser(syntax.Variant(syntax.LangPOSIX)).Parse(strings.NewReader(script), "")
	if err != nil {
		return
	}
	cfg := &expand.Config{Env: mapEnviron(env, false), NoUnset: true}
	syntax.Walk(file, func(n syntax.Node) bool {
		call, ok := n.(*syntax.CallExpr)
		if !ok || len(call.Args) < 3 || call.Args[0].Lit() != "chown" {
			return true
		}
		recursive := false
		for _, w := range call.Args[1:] {
			v, err := expand.Literal(cfg, w)
			if err != nil {
				continue // the owner, $(stat ...)
			}
			if v == "-R" {
				recursive = true
			}
			chowned[v] = true
			if recursive {
				chowned[v+"/"] = true
			}
		}
		return true
	})
	for _, w := range written {
		ok := chowned[w]
		for c := range chowned {
			ok = ok || (strings.HasSuffix(c, "/") && strings.HasPrefix(w, c))
		}
		if !ok {
			t.Errorf("%s: kiln, as root, writes %s into the workspace: chown it to the workspace's owner (jenkins/README.md)", where, w)
		}
	}
}

// checkContainers checks the container steps and default containers, and
// returns how many container steps use kiln.
func (j *jenkinsfile) checkContainers(t *testing.T) int {
	t.Helper()
	kiln := 0
	for _, m := range reDefaultCont.FindAllStringSubmatch(j.src.code, -1) {
		name := j.src.str(m[1]).value
		if c := j.container(name); c == nil {
			t.Errorf("defaultContainer %q: not in the agent pods", name)
		} else if isKilnImage(c.Image) {
			t.Errorf("defaultContainer %q: kiln's image has no /bin/sh: use container(name: %q, shell: '/busybox/sh') steps", name, name)
		}
	}
	for _, m := range reContainer.FindAllStringSubmatch(j.src.code, -1) {
		args := map[string]string{}
		for _, a := range reNamedArg.FindAllStringSubmatch(m[1], -1) {
			args[a[1]] = j.src.str(a[2]).value
		}
		if len(args) == 0 && stringRef.MatchString(m[1]) {
			args["name"] = j.src.str(m[1]).value
		}
		c := j.container(args["name"])
		if c == nil {
			t.Errorf("container(%s): no container %q in the agent pods", m[1], args["name"])
			continue
		}
		if isKilnImage(c.Image) {
			kiln++
			if args["shell"] != "/busybox/sh" {
				t.Errorf("container %q: kiln's image has no /bin/sh: give shell: '/busybox/sh'", args["name"])
			}
		}
	}
	return kiln
}

// checkShebangScript checks a script that names its interpreter: Jenkins
// then runs it without -e, so a script of several commands must set it.
func checkShebangScript(t *testing.T, where, script string) {
	t.Helper()
	script = strings.TrimLeft(script, " \t\n")
	if !strings.HasPrefix(script, "#!") {
		return
	}
	file, err := syntax.NewParser(syntax.Variant(syntax.LangPOSIX)).Parse(strings.NewReader(script), "")
	if err != nil {
		t.Errorf("%s: %v", where, err)
		return
	}
	if len(file.Stmts) < 2 {
		return
	}
	first, ok := file.Stmts[0].Cmd.(*syntax.CallExpr)
	if !ok || len(first.Args) < 2 || first.Args[0].Lit() != "set" || !strings.Contains(first.Args[1].Lit(), "e") {
		t.Errorf("%s: %d commands after a #! line: begin with set -e, or a failure goes unnoticed", where, len(file.Stmts))
	}
}

// checkJobCalls checks that the jobs the file starts exist and get exactly
// the parameters their Jenkinsfile declares.
func (j *jenkinsfile) checkJobCalls(t *testing.T) {
	t.Helper()
	calls := reBuildJob.FindAllStringSubmatch(j.src.code, -1)
	if n := len(reBuildJobWord.FindAllString(j.src.code, -1)); n != len(calls) {
		t.Errorf("%d build job steps, %d with a parameters list", n, len(calls))
	}
	for _, m := range calls {
		job := j.src.str(m[1]).value
		file, ok := jenkinsJobs[job]
		if !ok {
			t.Errorf("build job %q: unknown job (jenkinsJobs maps jobs to Jenkinsfiles)", job)
			continue
		}
		var passed []string
		for _, p := range reParam.FindAllStringSubmatch(m[2], -1) {
			passed = append(passed, j.src.str(p[2]).value)
		}
		declared := loadJenkinsfile(t, file).params
		sort.Strings(passed)
		sort.Strings(declared)
		if !slices.Equal(passed, declared) {
			t.Errorf("build job %q: passes %v, %s declares %v", job, passed, file, declared)
		}
	}
	for _, m := range reCopyArtPerm.FindAllStringSubmatch(j.src.code, -1) {
		if job := j.src.str(m[1]).value; jenkinsJobs[job] == "" {
			t.Errorf("copyArtifactPermission(%q): unknown job", job)
		}
	}
}

// TestGroovyLexer checks the lexer on the forms Jenkinsfiles use.
func TestGroovyLexer(t *testing.T) {
	src := `// a comment with 'quotes' and sh '''x'''
stage('a') { /* block
comment */ sh '''#!/busybox/sh
    echo "it's" \
      $X \\
'''
  sh "echo ${env.X}"
  url = 'https://example.com/a' // trailing
}`
	g, err := lexGroovy(src)
	if err != nil {
		t.Fatal(err)
	}
	want := []groovyString{
		{value: "a"},
		{value: "#!/busybox/sh\n    echo \"it's\"       $X \\\n"},
		{value: "echo ${env.X}", gstring: true},
		{value: "https://example.com/a"},
	}
	if !slices.Equal(g.strings, want) {
		t.Errorf("strings %+v, want %+v", g.strings, want)
	}
	if strings.Contains(g.code, "comment") || strings.Contains(g.code, "trailing") {
		t.Errorf("comments left in code: %q", g.code)
	}
	if got := len(reShStep.FindAllString(g.code, -1)); got != 2 {
		t.Errorf("%d sh steps, want 2", got)
	}
	for _, bad := range []string{`sh '''x`, `x = 'a\qb'`, `/* x`, "x = 'a\nb'"} {
		if _, err := lexGroovy(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
