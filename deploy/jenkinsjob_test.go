package deploy_test

import (
	"encoding/xml"
	"errors"
	"io"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"

	"github.com/kiln-build/kiln/pkg/cli"
	"github.com/kiln-build/kiln/pkg/registry"
)

// jenkinsProject is what the tests read from a freestyle job's config.xml.
type jenkinsProject struct {
	XMLName      xml.Name `xml:"project"`
	AssignedNode string   `xml:"assignedNode"`
	CanRoam      bool     `xml:"canRoam"`
	SCMClass     struct {
		Class string `xml:"class,attr"`
	} `xml:"scm"`
	Shells   []string `xml:"builders>hudson.tasks.Shell>command"`
	Bindings []struct {
		CredentialsID    string `xml:"credentialsId"`
		UsernameVariable string `xml:"usernameVariable"`
		PasswordVariable string `xml:"passwordVariable"`
	} `xml:"buildWrappers>org.jenkinsci.plugins.credentialsbinding.impl.SecretBuildWrapper>bindings>org.jenkinsci.plugins.credentialsbinding.impl.UsernamePasswordMultiBinding"`
	Artifacts []string `xml:"publishers>hudson.tasks.ArtifactArchiver>artifacts"`
}

// jenkinsJobElements are the elements a job's config.xml may have, by
// path: anything else is a misspelling Jenkins would drop with a warning
// about "old data".
var jenkinsJobElements = func() map[string]bool {
	m := map[string]bool{}
	add := func(parent string, children ...string) {
		for _, c := range children {
			m[parent+"/"+c] = true
		}
	}
	add("", "project")
	add("/project", "description", "keepDependencies", "properties", "scm", "assignedNode", "canRoam", "disabled",
		"blockBuildWhenDownstreamBuilding", "blockBuildWhenUpstreamBuilding", "triggers", "concurrentBuild",
		"builders", "publishers", "buildWrappers")
	add("/project/scm", "configVersion", "userRemoteConfigs", "branches", "doGenerateSubmoduleConfigurations", "submoduleCfg", "extensions")
	add("/project/scm/userRemoteConfigs", "hudson.plugins.git.UserRemoteConfig")
	add("/project/scm/userRemoteConfigs/hudson.plugins.git.UserRemoteConfig", "url", "credentialsId")
	add("/project/scm/branches", "hudson.plugins.git.BranchSpec")
	add("/project/scm/branches/hudson.plugins.git.BranchSpec", "name")
	add("/project/builders", "hudson.tasks.Shell")
	add("/project/builders/hudson.tasks.Shell", "command", "configuredLocalRules")
	add("/project/publishers", "hudson.tasks.ArtifactArchiver")
	add("/project/publishers/hudson.tasks.ArtifactArchiver", "artifacts", "allowEmptyArchive", "onlyIfSuccessful",
		"fingerprint", "defaultExcludes", "caseSensitive", "followSymlinks")
	add("/project/buildWrappers", "org.jenkinsci.plugins.credentialsbinding.impl.SecretBuildWrapper")
	add("/project/buildWrappers/org.jenkinsci.plugins.credentialsbinding.impl.SecretBuildWrapper", "bindings")
	add("/project/buildWrappers/org.jenkinsci.plugins.credentialsbinding.impl.SecretBuildWrapper/bindings",
		"org.jenkinsci.plugins.credentialsbinding.impl.UsernamePasswordMultiBinding")
	add("/project/buildWrappers/org.jenkinsci.plugins.credentialsbinding.impl.SecretBuildWrapper/bindings/org.jenkinsci.plugins.credentialsbinding.impl.UsernamePasswordMultiBinding",
		"credentialsId", "usernameVariable", "passwordVariable")
	return m
}()

// checkJobElements fails on an element config.xml may not have.
func checkJobElements(data string) error {
	dec := xml.NewDecoder(strings.NewReader(data))
	var stack []string
	var errs []error
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		switch e := tok.(type) {
		case xml.StartElement:
			p := strings.Join(stack, "/") + "/" + e.Name.Local
			if len(stack) > 0 {
				p = "/" + p
			}
			if !jenkinsJobElements[p] {
				errs = append(errs, errors.New("unknown element "+p))
			}
			stack = append(stack, e.Name.Local)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		}
	}
	return errors.Join(errs...)
}

// TestJenkinsJobs checks the freestyle jobs' config.xml: the pod template
// of their label exists and brings the kiln binary their shell step runs,
// the step's kiln command lines parse, and the credentials they bind are
// the variables kiln reads for the registries they push to.
func TestJenkinsJobs(t *testing.T) {
	for _, f := range deployFiles(t, kindJenkinsJob) {
		t.Run(f, func(t *testing.T) {
			data := readFile(t, f)
			if err := checkJobElements(data); err != nil {
				t.Error(err)
			}
			var job jenkinsProject
			if err := xml.Unmarshal([]byte(data), &job); err != nil {
				t.Fatal(err)
			}
			template, ok := jenkinsPodTemplates[job.AssignedNode]
			if !ok {
				t.Fatalf("assignedNode %q: no pod template of jenkinsPodTemplates has this label", job.AssignedNode)
			}
			if job.CanRoam {
				t.Errorf("canRoam: the job must run on its pod template (%s)", job.AssignedNode)
			}
			if job.SCMClass.Class != "hudson.plugins.git.GitSCM" {
				t.Errorf("scm %q: the job builds a git checkout", job.SCMClass.Class)
			}
			pod, ok := decodeObjects(t, fromRepoRoot(t, f, template))[0].(*corev1.Pod)
			if !ok {
				t.Fatalf("%s: not a Pod", template)
			}
			binaries := agentKilnBinaries(pod)
			if len(binaries) == 0 {
				t.Fatalf("%s: no kiln binary in the jnlp container, where freestyle steps run", template)
			}
			env := map[string]string{}
			for k, v := range jenkinsBuiltins {
				env[k] = v
			}
			bound := map[string]bool{}
			for _, b := range job.Bindings {
				if b.CredentialsID == "" {
					t.Errorf("a credential binding without credentialsId")
				}
				env[b.UsernameVariable], env[b.PasswordVariable] = "sample-user", "sample-password"
				bound[b.UsernameVariable], bound[b.PasswordVariable] = true, true
			}
			if len(job.Shells) == 0 {
				t.Fatal("no Execute shell step")
			}
			checker := deployChecker(env)
			commands := 0
			for i, script := range job.Shells {
				commands += checker.checkScript(t, "shell step", script)
				cmds, err := checker.commands(script)
				if err != nil {
					continue
				}
				for _, argv := range cmds {
					if !slices.Contains(binaries, argv[0]) {
						t.Errorf("shell step %d runs %s; the agent has kiln as %v", i+1, argv[0], binaries)
					}
					for _, host := range pushRegistries(t, argv) {
						user, password := registry.CredentialEnvVars(host)
						if !bound[user] || !bound[password] {
							t.Errorf("shell step %d pushes to %q: bind its credentials to %s and %s", i+1, host, user, password)
						}
					}
				}
				for _, a := range job.Artifacts {
					if !strings.Contains(script, `"$WORKSPACE/`+a+`"`) {
						t.Errorf("artifact %q: the shell step writes no $WORKSPACE/%s", a, a)
					}
				}
			}
			if commands == 0 {
				t.Errorf("no kiln command line")
			}
		})
	}
}

// agentKilnBinaries returns where the pod's jnlp container finds kiln's
// binary, copied there by an init container.
func agentKilnBinaries(pod *corev1.Pod) []string {
	var out []string
	for _, ic := range pod.Spec.InitContainers {
		if !isKilnImage(ic.Image) || !isKilnCopy(&ic) || len(ic.Command) != 3 {
			continue
		}
		dst := ic.Command[2]
		for _, vm := range ic.VolumeMounts {
			if !strings.HasPrefix(dst, vm.MountPath+"/") {
				continue
			}
			for _, c := range pod.Spec.Containers {
				for _, cm := range c.VolumeMounts {
					if c.Name == "jnlp" && cm.Name == vm.Name {
						out = append(out, path.Join(cm.MountPath, strings.TrimPrefix(dst, vm.MountPath)))
					}
				}
			}
		}
	}
	return out
}

// pushRegistries returns the registries a kiln build command line pushes
// to.
func pushRegistries(t *testing.T, argv []string) []string {
	t.Helper()
	args := argv[1:]
	if kilnBinaries[argv[0]] {
		args = append([]string{"build"}, args...)
	}
	cmd, rest, err := cli.NewRootCommand().Find(args)
	if err != nil || cmd.Name() != "build" || cmd.ParseFlags(rest) != nil {
		return nil
	}
	if noPush, _ := cmd.Flags().GetBool("no-push"); noPush {
		return nil
	}
	dests, _ := cmd.Flags().GetStringArray("destination")
	var hosts []string
	for _, d := range dests {
		ref, err := name.ParseReference(d)
		if err != nil {
			t.Errorf("%q: %v", d, err)
			continue
		}
		hosts = append(hosts, ref.Context().RegistryStr())
	}
	return hosts
}
