package rootfs

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// harnessRegistry is the reference registry of the development machines
// (shared/harness); the test using it is skipped where it does not run.
const harnessRegistry = "127.0.0.1:5000"

// TestApplyWhiteoutTestImage extracts the harness image built to exercise
// whiteouts, layer by layer. Its last layer whites out wt/hard1, one name of
// a hard-linked pair: wt/hard2 must stay a regular file with its content.
func TestApplyWhiteoutTestImage(t *testing.T) {
	conn, err := net.DialTimeout("tcp", harnessRegistry, time.Second)
	if err != nil {
		t.Skipf("harness registry %s not reachable: %v", harnessRegistry, err)
	}
	conn.Close()
	ref, err := name.ParseReference(harnessRegistry+"/library/whiteout-test:latest", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Skipf("image %s not available: %v", ref, err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	for _, l := range layers {
		digest, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		// Without root the image's owners cannot be kept; that is not
		// what this test is about.
		err = Apply(context.Background(), root, rc, WithLayerName(digest.String()), WithChownErrorsIgnored(os.Geteuid() != 0))
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
	}

	var got []string
	err = filepath.Walk(filepath.Join(root, "wt"), func(p string, _ os.FileInfo, err error) error {
		rel, _ := filepath.Rel(root, p)
		got = append(got, rel)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// shared/harness/testdata/whiteout-expected.txt
	want := []string{
		"wt", "wt/emptydir", "wt/hard2", "wt/keep.txt", "wt/link-to-keep", "wt/mode.sh", "wt/new.txt",
		"wt/opq", "wt/opq/new.txt", "wt/replace-dir-with-file", "wt/replace-file-with-dir",
		"wt/replace-file-with-dir/inner.txt",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("/wt:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	hard2 := filepath.Join(root, "wt/hard2")
	if fi, err := os.Lstat(hard2); err != nil || !fi.Mode().IsRegular() || readFile(t, hard2) != "hard\n" {
		t.Errorf("wt/hard2: %v, %v", fi, err)
	}
	if got := readFile(t, filepath.Join(root, "wt/replace-dir-with-file")); got != "now a file\n" {
		t.Errorf("wt/replace-dir-with-file = %q", got)
	}
}
