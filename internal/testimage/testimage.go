package testimage

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/internal/testutil"
)

// File is one entry of a test layer. Mode carries the permission bits;
// Dir, Link (symlink target) or Hardlink (target path) choose the type.
type File struct {
	Path     string
	Data     string
	Mode     int64
	UID, GID int
	Dir      bool
	Link     string
	Hardlink string
}

// epoch is the mtime of every entry: test images are reproducible.
var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Layer packs files into a layer. Parent directories are not implied.
func Layer(t testing.TB, files ...File) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: strings.TrimPrefix(f.Path, "/"), Mode: f.Mode, Uid: f.UID, Gid: f.GID, ModTime: epoch}
		switch {
		case f.Dir:
			h.Typeflag = tar.TypeDir
			if h.Mode == 0 {
				h.Mode = 0o755
			}
		case f.Link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, f.Link, 0o777
		case f.Hardlink != "":
			h.Typeflag, h.Linkname = tar.TypeLink, strings.TrimPrefix(f.Hardlink, "/")
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.Data))
			if h.Mode == 0 {
				h.Mode = 0o644
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, f.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Image stacks layers into a linux/amd64 Docker image with env and cmd.
func Image(t testing.TB, env, cmd []string, layers ...v1.Layer) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.DockerManifestSchema2)
	img, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Env, cf.Config.Cmd = env, cmd
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// DefaultEnv is the PATH of the test images.
var DefaultEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

// Busybox returns an image of Debian's static busybox with its applets as
// symlinks, /etc/passwd and /etc/group with root and nobody, and /tmp.
// It skips t when busybox-static is not installed.
func Busybox(t testing.TB) v1.Image {
	t.Helper()
	const bin = "/bin/busybox"
	testutil.RequireFile(t, bin, "busybox-static")
	if out, err := exec.Command("file", "-L", bin).Output(); err == nil && !bytes.Contains(out, []byte("statically linked")) {
		t.Skipf("%s is not statically linked: install the Debian package busybox-static", bin)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	list, err := exec.Command(bin, "--list-full").Output()
	if err != nil {
		t.Fatalf("busybox --list-full: %v", err)
	}
	files := []File{
		{Path: "bin", Dir: true}, {Path: "sbin", Dir: true}, {Path: "usr", Dir: true},
		{Path: "usr/bin", Dir: true}, {Path: "usr/sbin", Dir: true}, {Path: "etc", Dir: true},
		{Path: "root", Dir: true, Mode: 0o700}, {Path: "tmp", Dir: true, Mode: 0o1777},
		{Path: "home", Dir: true}, {Path: "var", Dir: true},
		{Path: "bin/busybox", Data: string(data), Mode: 0o755},
		{Path: "etc/passwd", Data: "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"},
		{Path: "etc/group", Data: "root:x:0:\nnobody:x:65534:\n"},
	}
	var applets []string
	for _, p := range strings.Fields(string(list)) {
		if p != "bin/busybox" {
			applets = append(applets, p)
		}
	}
	sort.Strings(applets)
	for _, p := range applets {
		files = append(files, File{Path: p, Link: "/bin/busybox"})
	}
	return Image(t, DefaultEnv, []string{"sh"}, Layer(t, files...))
}
