package output

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/sirupsen/logrus"
)

type recordingPusher struct{ got []string }

func (p *recordingPusher) Push(_ context.Context, img v1.Image, dests []string) ([]name.Digest, error) {
	p.got = append(p.got, dests...)
	return nil, nil
}

func TestWriteAllOutputs(t *testing.T) {
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	digest, _ := img.Digest()
	dir := t.TempDir()
	spec := &Spec{
		Destinations:               []string{"127.0.0.1:5000/team/app:v1", "127.0.0.1:5000/team/app"},
		TarPath:                    filepath.Join(dir, "image.tar"),
		OCILayout:                  filepath.Join(dir, "layout"),
		DigestFile:                 filepath.Join(dir, "digest"),
		ImageNameWithDigestFile:    filepath.Join(dir, "name-digest"),
		ImageNameTagWithDigestFile: filepath.Join(dir, "name-tag-digest"),
	}
	p := &recordingPusher{}
	if err := Write(context.Background(), img, spec, p, logrus.New()); err != nil {
		t.Fatal(err)
	}
	if strings.Join(p.got, ",") != strings.Join(spec.Destinations, ",") {
		t.Errorf("pushed %v", p.got)
	}
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := read(spec.DigestFile); got != digest.String() {
		t.Errorf("digest file %q, want %q", got, digest)
	}
	wantND := "127.0.0.1:5000/team/app@" + digest.String()
	if got := read(spec.ImageNameWithDigestFile); got != wantND+"\n"+wantND+"\n" {
		t.Errorf("name-digest file %q", got)
	}
	if got := read(spec.ImageNameTagWithDigestFile); !strings.HasPrefix(got, "127.0.0.1:5000/team/app:v1@"+digest.String()+"\n127.0.0.1:5000/team/app:latest@") {
		t.Errorf("name-tag-digest file %q", got)
	}
	tag, _ := name.NewTag("127.0.0.1:5000/team/app:v1")
	fromTar, err := tarball.ImageFromPath(spec.TarPath, &tag)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := fromTar.Digest(); d != digest {
		t.Errorf("tarball image digest %s, want %s", d, digest)
	}
	lp, err := layout.FromPath(spec.OCILayout)
	if err != nil {
		t.Fatal(err)
	}
	fromLayout, err := lp.Image(digest)
	if err != nil {
		t.Fatalf("image %s not in layout: %v", digest, err)
	}
	if _, err := fromLayout.Layers(); err != nil {
		t.Fatal(err)
	}
	// No temporary files left next to the outputs.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("leftover %s", e.Name())
		}
	}
}

func TestNoPushSkipsPusher(t *testing.T) {
	img, _ := random.Image(64, 1)
	p := &recordingPusher{}
	spec := &Spec{Destinations: []string{"example.com/a:b"}, NoPush: true}
	if err := Write(context.Background(), img, spec, p, logrus.New()); err != nil {
		t.Fatal(err)
	}
	if len(p.got) != 0 {
		t.Fatalf("pushed with --no-push: %v", p.got)
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		spec Spec
		want string
	}{
		{Spec{}, "no destination"},
		{Spec{NoPush: true, TarPath: "x.tar"}, "--tar-path needs a --destination"},
		{Spec{Destinations: []string{"Bad Ref"}}, `invalid destination "Bad Ref"`},
	} {
		err := c.spec.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want %q", c.spec, err, c.want)
		}
	}
	if err := (&Spec{NoPush: true}).Validate(); err != nil {
		t.Errorf("--no-push alone: %v", err)
	}
}

// A digest file that is a mount point (Kubernetes' /dev/termination-log)
// cannot be replaced by a rename: it is written in place.
func TestDigestFileOnAMountPoint(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to bind-mount a file")
	}
	dir := t.TempDir()
	target, src := filepath.Join(dir, "termination-log"), filepath.Join(t.TempDir(), "backing")
	for _, p := range []string{target, src} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mount(src, target, "", syscall.MS_BIND, ""); err != nil {
		t.Skipf("bind mount: %v", err)
	}
	defer syscall.Unmount(target, syscall.MNT_DETACH)
	img, _ := random.Image(64, 1)
	if err := Write(context.Background(), img, &Spec{NoPush: true, DigestFile: target}, nil, logrus.New()); err != nil {
		t.Fatal(err)
	}
	digest, _ := img.Digest()
	if b, _ := os.ReadFile(src); string(b) != digest.String() {
		t.Fatalf("the mounted file holds %q, want %s", b, digest)
	}
}
