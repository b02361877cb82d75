package deploy_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// kilnRepository is where `make release PUSH=1` publishes kiln's images
// (README, "The images").
const kilnRepository = "ghcr.io/kiln-build/kiln"

// releaseTag is the newest release in CHANGELOG.md, "v0.1.0": deploy
// material pins kiln's images to it, so that a release that forgets to
// update them fails here.
var releaseTag = func() string {
	data, err := os.ReadFile(filepath.Join(repoRoot, "CHANGELOG.md"))
	if err != nil {
		panic(err)
	}
	m := regexp.MustCompile(`(?m)^## \[(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)\]`).FindSubmatch(data)
	if m == nil {
		panic("CHANGELOG.md: no release heading \"## [X.Y.Z]\"")
	}
	return "v" + string(m[1])
}()

// kiln's images as deploy material names them: the executor image and the
// debug image (with a busybox shell) of the newest release.
var (
	kilnExecutorImage = kilnRepository + ":" + releaseTag
	kilnDebugImage    = kilnRepository + ":" + releaseTag + "-debug"
	kilnImages        = map[string]bool{kilnExecutorImage: true, kilnDebugImage: true}
)

// isKilnImage reports whether image is kiln's, in any version.
func isKilnImage(image string) bool {
	return image == kilnRepository || strings.HasPrefix(image, kilnRepository+":") || strings.HasPrefix(image, kilnRepository+"@")
}

// TestImageNames: every mention of kiln's images in deploy/ and the docs is
// the newest release's (or its moving tags in the docs), and the old
// placeholder is gone.
func TestImageNames(t *testing.T) {
	ref := regexp.MustCompile(regexp.QuoteMeta(kilnRepository) + `(?::([A-Za-z0-9_.-]+))?`)
	files := markdownFiles(t)
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && kindOf(filepath.ToSlash(path)) != "" {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	mentions := 0
	for _, f := range files {
		text := readFile(t, f)
		if strings.Contains(text, "registry.example.com/kiln") {
			t.Errorf("%s: the placeholder registry.example.com/kiln: name the release's images, %s", f, kilnExecutorImage)
		}
		isDoc := strings.HasSuffix(f, ".md")
		// Kustomize's images transformer names an image without its tag.
		bareOK := isDoc || kindOf(filepath.ToSlash(f)) == kindKustomization
		for _, m := range ref.FindAllStringSubmatch(text, -1) {
			mentions++
			switch tag := m[1]; {
			case tag == "" && bareOK, tag == releaseTag, tag == releaseTag+"-debug":
			case isDoc && (tag == "latest" || tag == "debug" || strings.HasPrefix(tag, "<version>") || strings.HasPrefix(tag, releaseTag+"-")):
			default:
				t.Errorf("%s: %q: use %s or %s", f, m[0], kilnExecutorImage, kilnDebugImage)
			}
		}
	}
	if mentions == 0 {
		t.Error("no mention of kiln's images")
	}
}
