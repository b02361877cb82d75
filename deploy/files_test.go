package deploy_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// repoRoot is the repository root, relative to this package's directory:
// Jenkins and GitLab resolve the paths in their files from there.
const repoRoot = ".."

// kind is what a file of deploy/ is, and so how its tests read it.
type kind string

const (
	kindManifest      kind = "Kubernetes manifest"
	kindKustomization kind = "Kustomization"
	kindTekton        kind = "Tekton resource"
	kindGitLab        kind = "GitLab CI file"
	kindJenkinsfile   kind = "Jenkinsfile"
	kindDockerfile    kind = "Dockerfile"
	kindJenkinsJob    kind = "Jenkins job config.xml"
	kindDoc           kind = "Markdown document"
)

// kindOf classifies a path relative to deploy/; "" means no test reads it.
func kindOf(path string) kind {
	base := filepath.Base(path)
	switch {
	case strings.HasSuffix(path, ".go"):
		return ""
	case base == "kustomization.yaml":
		return kindKustomization
	case strings.HasSuffix(base, ".gitlab-ci.yml"):
		return kindGitLab
	case base == "Jenkinsfile" || strings.HasSuffix(base, ".Jenkinsfile"):
		return kindJenkinsfile
	case base == "Dockerfile":
		return kindDockerfile
	case base == "config.xml" && strings.HasPrefix(path, "jenkins/"):
		return kindJenkinsJob
	case strings.HasSuffix(base, ".md"):
		return kindDoc
	case strings.HasPrefix(path, "tekton/") && strings.HasSuffix(base, ".yaml"):
		return kindTekton
	case strings.HasSuffix(base, ".yaml"):
		return kindManifest
	}
	return ""
}

// deployFiles lists the files of deploy/ of kind k, as paths relative to
// deploy/ with forward slashes.
func deployFiles(t *testing.T, k kind) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if path = filepath.ToSlash(path); kindOf(path) == k {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no %s in deploy/", k)
	}
	return files
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// fromRepoRoot turns a path written relative to the repository root, as
// Jenkins' yamlFile and GitLab's include:local are, into one relative to
// this directory; it fails if the file does not exist.
func fromRepoRoot(t *testing.T, where, path string) string {
	t.Helper()
	p := filepath.Join(repoRoot, strings.TrimPrefix(path, "/"))
	if _, err := os.Stat(p); err != nil {
		t.Errorf("%s: %q does not exist in the repository", where, path)
		return ""
	}
	return p
}

// TestEveryFileIsChecked keeps untested files out of deploy/.
func TestEveryFileIsChecked(t *testing.T) {
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if path = filepath.ToSlash(path); kindOf(path) == "" && !strings.HasSuffix(path, ".go") {
			t.Errorf("deploy/%s: no test reads this kind of file; add it to kindOf and check it", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
