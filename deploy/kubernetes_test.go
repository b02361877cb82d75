package deploy_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// decoder decodes Kubernetes and Tekton objects strictly: an unknown or
// duplicate field, or an unknown apiVersion/kind, is an error.
var decoder = func() runtime.Decoder {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, batchv1.AddToScheme, pipelinev1.AddToScheme} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	return serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
}()

// decodeObjects strictly decodes every YAML document of a file.
func decodeObjects(t *testing.T, path string) []runtime.Object {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(readFile(t, path))))
	var objs []runtime.Object
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, _, err := decoder.Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		objs = append(objs, obj)
	}
	if len(objs) == 0 {
		t.Fatalf("%s: no object", path)
	}
	return objs
}

// manifests are the Kubernetes objects of deploy/, by file.
type manifests struct {
	files      []string
	objs       map[string][]runtime.Object
	secrets    map[string]*corev1.Secret
	configMaps map[string]*corev1.ConfigMap
	claims     map[string]*corev1.PersistentVolumeClaim
}

func loadManifests(t *testing.T) *manifests {
	t.Helper()
	m := &manifests{
		files:      deployFiles(t, kindManifest),
		objs:       map[string][]runtime.Object{},
		secrets:    map[string]*corev1.Secret{},
		configMaps: map[string]*corev1.ConfigMap{},
		claims:     map[string]*corev1.PersistentVolumeClaim{},
	}
	for _, f := range m.files {
		m.objs[f] = decodeObjects(t, f)
		for _, obj := range m.objs[f] {
			switch o := obj.(type) {
			case *corev1.Secret:
				m.secrets[o.Name] = o
			case *corev1.ConfigMap:
				m.configMaps[o.Name] = o
			case *corev1.PersistentVolumeClaim:
				m.claims[o.Name] = o
			}
		}
	}
	return m
}

// TestKubernetesManifests decodes every manifest of deploy/ strictly and
// checks each pod against the facts the comments state: kiln runs as root
// for RUN, unprivileged, without added capabilities, under RuntimeDefault
// seccomp, with a dockerconfigjson Secret at /kiln/.docker.
func TestKubernetesManifests(t *testing.T) {
	m := loadManifests(t)
	for _, f := range m.files {
		t.Run(f, func(t *testing.T) {
			rule := ruleFor(f)
			for _, obj := range m.objs[f] {
				switch o := obj.(type) {
				case *corev1.Pod:
					m.checkPod(t, rule, &o.Spec)
				case *batchv1.Job:
					m.checkPod(t, rule, &o.Spec.Template.Spec)
					if o.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
						t.Errorf("Job %q: restartPolicy %q: a failed build must not restart in place", o.Name, o.Spec.Template.Spec.RestartPolicy)
					}
				case *corev1.Secret:
					checkRegistrySecret(t, o)
				case *corev1.ConfigMap:
					if !rule.configMapCredentials {
						t.Errorf("ConfigMap %q: registry credentials belong in a Secret (credentials/README.md)", o.Name)
					}
					checkDockerConfigJSON(t, "ConfigMap "+o.Name, o.Data["config.json"])
				case *corev1.PersistentVolumeClaim:
					// Checked where pods claim it.
				default:
					t.Errorf("%T: no check for this kind", obj)
				}
			}
		})
	}
}

// checkPod checks a pod: its volumes name Secrets, ConfigMaps and claims of
// deploy/, its mounts name its volumes, and its kiln containers keep to the
// facts.
func (m *manifests) checkPod(t *testing.T, rule fileRule, spec *corev1.PodSpec) {
	t.Helper()
	volumes := map[string]*corev1.Volume{}
	for i, v := range spec.Volumes {
		volumes[v.Name] = &spec.Volumes[i]
		switch {
		case v.Secret != nil && m.secrets[v.Secret.SecretName] == nil:
			t.Errorf("volume %q: no Secret %q in deploy/", v.Name, v.Secret.SecretName)
		case v.ConfigMap != nil && m.configMaps[v.ConfigMap.Name] == nil:
			t.Errorf("volume %q: no ConfigMap %q in deploy/", v.Name, v.ConfigMap.Name)
		case v.PersistentVolumeClaim != nil && m.claims[v.PersistentVolumeClaim.ClaimName] == nil:
			t.Errorf("volume %q: no PersistentVolumeClaim %q in deploy/", v.Name, v.PersistentVolumeClaim.ClaimName)
		}
	}
	all := append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
	kiln := false
	for _, c := range all {
		for _, vm := range c.VolumeMounts {
			if volumes[vm.Name] == nil {
				t.Errorf("container %q: mount of undefined volume %q", c.Name, vm.Name)
			}
		}
		if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("container %q: give memory requests and limits", c.Name)
		}
		switch {
		case isKilnImage(c.Image) && isKilnCopy(&c):
			checkKilnCopy(t, &c, all)
		case isKilnImage(c.Image):
			kiln = true
			m.checkKilnContainer(t, rule, &c, volumes)
			checkContainerCommand(t, rule, &c)
		}
	}
	if pod := spec.SecurityContext; pod == nil || pod.SeccompProfile == nil || pod.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod: seccompProfile RuntimeDefault is what kiln works under: state it")
	}
	if kiln && (spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken) {
		t.Errorf("pod: RUN steps run in the kiln container: set automountServiceAccountToken: false")
	}
}

// isKilnCopy reports whether c copies kiln's binary out of its image with
// the debug image's busybox, for another container to run.
func isKilnCopy(c *corev1.Container) bool {
	return len(c.Command) > 0 && c.Command[0] == "/busybox/cp"
}

// checkKilnCopy checks a container that copies kiln's binary into a volume:
// the copy lands where another container mounts that volume, and that
// container runs kiln as a non-root user (as root, kiln would run RUN steps
// in place, in that container: the Jenkins agent's own filesystem).
func checkKilnCopy(t *testing.T, c *corev1.Container, all []corev1.Container) {
	t.Helper()
	argv := append(append([]string{}, c.Command...), c.Args...)
	if c.Image != kilnDebugImage {
		t.Errorf("container %q: only %s has /busybox/cp", c.Name, kilnDebugImage)
	}
	if len(argv) != 3 || argv[1] != "/kiln/executor" {
		t.Errorf("container %q: %q: copy /kiln/executor, the static binary, to one place", c.Name, argv)
		return
	}
	dst := argv[2]
	var volume string
	for _, vm := range c.VolumeMounts {
		if strings.HasPrefix(dst, vm.MountPath+"/") {
			volume = vm.Name
		}
	}
	if volume == "" {
		t.Errorf("container %q: %q is in no volume: the copy is lost", c.Name, dst)
		return
	}
	used := false
	for _, o := range all {
		for _, vm := range o.VolumeMounts {
			if o.Name == c.Name || vm.Name != volume {
				continue
			}
			used = true
			if binary := path.Join(vm.MountPath, strings.TrimPrefix(dst, mountPathOf(c, volume))); kilnBinaries[binary] {
				t.Errorf("container %q: %s is a kiln binary name the tests know as %v", o.Name, binary, kilnBinaries[binary])
			} else if _, ok := kilnBinaries[binary]; !ok {
				t.Errorf("container %q runs kiln as %s: add it to kilnBinaries so that the tests check its command lines", o.Name, binary)
			}
			if sc := o.SecurityContext; sc == nil || sc.RunAsUser == nil || *sc.RunAsUser == 0 || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
				t.Errorf("container %q runs kiln in its own filesystem: it must not be root (runAsUser non-zero and runAsNonRoot), or RUN steps would replace that filesystem", o.Name)
			}
		}
	}
	if !used {
		t.Errorf("container %q: no other container mounts volume %q", c.Name, volume)
	}
}

func mountPathOf(c *corev1.Container, volume string) string {
	for _, vm := range c.VolumeMounts {
		if vm.Name == volume {
			return vm.MountPath
		}
	}
	return ""
}

// checkKilnContainer checks the kiln container against the facts the
// comments state.
func (m *manifests) checkKilnContainer(t *testing.T, rule fileRule, c *corev1.Container, volumes map[string]*corev1.Volume) {
	t.Helper()
	if !kilnImages[c.Image] {
		t.Errorf("container %q: image %q: use the release's, one of %v", c.Name, c.Image, sortedKeys(kilnImages))
	}
	sc := c.SecurityContext
	if sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != 0 {
		t.Errorf("container %q: RUN steps need runAsUser: 0, state it", c.Name)
	}
	if sc != nil && sc.Privileged != nil && *sc.Privileged {
		t.Errorf("container %q: kiln needs no privileged mode", c.Name)
	}
	if sc != nil && sc.Capabilities != nil && len(sc.Capabilities.Add) > 0 {
		t.Errorf("container %q: kiln needs no added capability, got %v", c.Name, sc.Capabilities.Add)
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage} {
		if _, ok := c.Resources.Requests[r]; !ok {
			t.Errorf("container %q: no %s request", c.Name, r)
		}
	}
	if _, ok := c.Resources.Limits[corev1.ResourceEphemeralStorage]; !ok {
		t.Errorf("container %q: in-place builds fill the container's filesystem: limit ephemeral-storage", c.Name)
	}
	var dockerConfig *corev1.VolumeMount
	for i, vm := range c.VolumeMounts {
		if vm.MountPath == "/kiln/.docker" || vm.MountPath == "/kaniko/.docker" {
			dockerConfig = &c.VolumeMounts[i]
		}
	}
	if rule.loginInJob {
		// kiln login writes the image's own /kiln/.docker/config.json.
		if dockerConfig != nil {
			t.Errorf("container %q: the jobs log in with kiln login, which writes %s: mount nothing there", c.Name, dockerConfig.MountPath)
		}
		return
	}
	if dockerConfig == nil {
		t.Errorf("container %q: no docker config mounted at /kiln/.docker", c.Name)
		return
	}
	if !dockerConfig.ReadOnly {
		t.Errorf("container %q: mount the docker config read-only", c.Name)
	}
	v := volumes[dockerConfig.Name]
	if v != nil && v.ConfigMap != nil && rule.configMapCredentials {
		cm := m.configMaps[v.ConfigMap.Name]
		if cm != nil && cm.Data["config.json"] == "" && len(v.ConfigMap.Items) == 0 {
			t.Errorf("container %q: ConfigMap %q has no key config.json", c.Name, cm.Name)
		}
		return
	}
	checkDockerConfigSecretVolume(t, v)
}

// checkDockerConfigSecretVolume checks that a volume turns a
// kubernetes.io/dockerconfigjson Secret into config.json.
func checkDockerConfigSecretVolume(t *testing.T, v *corev1.Volume) {
	t.Helper()
	if v == nil || v.Secret == nil {
		t.Errorf("the docker config must come from a kubernetes.io/dockerconfigjson Secret (credentials/README.md)")
		return
	}
	checkDockerConfigItems(t, v.Name, v.Secret.Items)
}

func checkDockerConfigItems(t *testing.T, where string, items []corev1.KeyToPath) {
	t.Helper()
	if len(items) != 1 || items[0].Key != corev1.DockerConfigJsonKey || items[0].Path != "config.json" {
		t.Errorf("%s: items %v: map the key %q to config.json", where, items, corev1.DockerConfigJsonKey)
	}
}

// checkContainerCommand checks the kiln command a container runs.
func checkContainerCommand(t *testing.T, rule fileRule, c *corev1.Container) {
	t.Helper()
	checker := deployChecker(nil).withRule(rule)
	argv := append(append([]string{}, c.Command...), c.Args...)
	switch {
	case len(c.Command) == 0:
		// The image's entrypoint, kiln's executor.
		argv = append([]string{"/kiln/executor"}, c.Args...)
	case len(argv) == 1 && argv[0] == "/busybox/sh":
		// A shell kept waiting on its terminal for Jenkins' steps.
		if !c.TTY || !c.Stdin {
			t.Errorf("container %q: an idle /busybox/sh needs tty and stdin, or it exits at once", c.Name)
		}
		return
	case len(argv) == 3 && argv[0] == "/busybox/sh" && argv[1] == "-c":
		if checker.checkScript(t, "container "+c.Name, argv[2]) == 0 {
			t.Errorf("container %q: its script runs no kiln command", c.Name)
		}
		return
	}
	if ok, err := isKilnProgram(argv[0]); !ok || err != nil {
		t.Errorf("container %q: command %q: not kiln (%v)", c.Name, argv, err)
		return
	}
	if err := checker.check(argv); err != nil {
		t.Errorf("container %q: %q: %v", c.Name, strings.Join(argv, " "), err)
	}
}

// checkRegistrySecret checks a docker config Secret: the type pods rely
// on and a config.json kiln can read.
func checkRegistrySecret(t *testing.T, s *corev1.Secret) {
	t.Helper()
	if s.Type != corev1.SecretTypeDockerConfigJson {
		t.Errorf("Secret %q: type %q, want %q", s.Name, s.Type, corev1.SecretTypeDockerConfigJson)
	}
	data, ok := s.StringData[corev1.DockerConfigJsonKey]
	if !ok {
		data = string(s.Data[corev1.DockerConfigJsonKey])
	}
	checkDockerConfigJSON(t, "Secret "+s.Name, data)
}

// checkDockerConfigJSON checks a docker config.json kiln is to read.
func checkDockerConfigJSON(t *testing.T, where, data string) {
	t.Helper()
	var config struct {
		Auths map[string]struct {
			Username string `json:"username"`
			Password string `json:"password"`
		} `json:"auths"`
	}
	dec := json.NewDecoder(strings.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&config); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	if len(config.Auths) == 0 {
		t.Errorf("%s: no registry in auths", where)
	}
	for host, a := range config.Auths {
		if a.Username == "" || a.Password == "" {
			t.Errorf("%s: registry %q: username and password", where, host)
		}
		if strings.TrimSpace(host) != host {
			t.Errorf("%s: registry %q: a stray space", where, host)
		}
	}
}

// TestKustomizations decodes each kustomization strictly, builds it with
// kustomize, and decodes what it renders.
func TestKustomizations(t *testing.T) {
	for _, f := range deployFiles(t, kindKustomization) {
		t.Run(f, func(t *testing.T) {
			var k types.Kustomization
			if err := yaml.UnmarshalStrict([]byte(readFile(t, f)), &k); err != nil {
				t.Fatal(err)
			}
			if k.Kind != types.KustomizationKind || k.APIVersion != types.KustomizationVersion {
				t.Errorf("%s/%s: want %s/%s", k.APIVersion, k.Kind, types.KustomizationVersion, types.KustomizationKind)
			}
			dir := filepath.Dir(f)
			for _, r := range k.Resources {
				if _, err := os.Stat(filepath.Join(dir, r)); err != nil {
					t.Errorf("resource %q: %v", r, err)
				}
			}
			rendered := kustomize(t, filesys.MakeFsOnDisk(), dir)
			if len(rendered) != len(k.Resources) {
				t.Errorf("rendered %d objects from %d resources", len(rendered), len(k.Resources))
			}
		})
	}
}

// kustomize builds the kustomization in dir of fsys and strictly decodes
// each object it renders.
func kustomize(t *testing.T, fsys filesys.FileSystem, dir string) []runtime.Object {
	t.Helper()
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fsys, dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var objs []runtime.Object
	for _, r := range res.Resources() {
		doc, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		obj, _, err := decoder.Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("rendered %s: %v", r.CurId(), err)
		}
		objs = append(objs, obj)
	}
	return objs
}

// TestKustomizeOverlay builds the overlay kubernetes/kustomization.yaml
// describes: the image and the registry Secret replaced.
func TestKustomizeOverlay(t *testing.T) {
	// The base as deploy/kubernetes/ has it, next to the overlay.
	fsys := filesys.MakeFsInMemory()
	write := func(name, content string) {
		if err := fsys.WriteFile(name, []byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir("kubernetes")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		write("/base/"+e.Name(), readFile(t, filepath.Join("kubernetes", e.Name())))
	}
	write("/overlay/kustomization.yaml", `resources:
  - ../base
images:
  - name: `+kilnRepository+`
    newName: harbor.example.com/tools/kiln
secretGenerator:
  - name: kiln-registry
    type: kubernetes.io/dockerconfigjson
    files:
      - .dockerconfigjson=config.json
`)
	write("/overlay/config.json", `{"auths": {"harbor.example.com": {"username": "u", "password": "p"}}}`)
	var job *batchv1.Job
	var secret *corev1.Secret
	for _, obj := range kustomize(t, fsys, "/overlay") {
		switch o := obj.(type) {
		case *batchv1.Job:
			job = o
		case *corev1.Secret:
			secret = o
		}
	}
	if job == nil || secret == nil {
		t.Fatalf("overlay rendered no Job or no Secret")
	}
	checkRegistrySecret(t, secret)
	pod := job.Spec.Template.Spec
	if got := pod.Containers[0].Image; got != "harbor.example.com/tools/kiln:"+releaseTag {
		t.Errorf("image %q: the images transformer did not apply", got)
	}
	for _, v := range pod.Volumes {
		if v.Secret != nil && v.Secret.SecretName != secret.Name {
			t.Errorf("volume %q uses Secret %q, not the generated %q", v.Name, v.Secret.SecretName, secret.Name)
		}
	}
	if got := job.Spec.Template.Labels["app.kubernetes.io/part-of"]; got != "kiln" {
		t.Errorf("pod template label app.kubernetes.io/part-of = %q, want kiln", got)
	}
}
