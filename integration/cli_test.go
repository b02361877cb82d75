package integration

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/internal/testimage"
	"github.com/kiln-build/kiln/internal/testutil"
)

// runWithStdin runs kiln with stdin and extra environment.
func (e *env) runWithStdin(dir string, stdin []byte, args []string, envv ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.kiln, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), envv...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return result{out: out.String(), err: err}
}

func TestDockerfileFromStdinAndContextSubPath(t *testing.T) {
	e := newEnv(t)
	base := pushBase(e)
	dir := writeFiles(t, map[string]string{"app/main.txt": "main", "other/x": "x"})
	dest := e.ref("test/stdin-df:1")
	df := "# syntax=docker/dockerfile:1.7\nFROM " + base + "\nARG FROM_ENV\nCOPY . /app/\nLABEL from-env=${FROM_ENV}\n"
	r := e.runWithStdin(dir, []byte(df), []string{"build", "--context", "dir://" + dir, "--context-sub-path", "app",
		"--dockerfile", "-", "-d", dest, "--insecure-registry", e.reg.Host, "--build-arg", "FROM_ENV"}, "FROM_ENV=taken-from-env")
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.out)
	}
	if !strings.Contains(r.out, "Ignoring the # syntax=docker/dockerfile:1.7 directive") {
		t.Errorf("no note about the syntax directive:\n%s", r.out)
	}
	img := e.pull(dest)
	fs := flatten(t, img)
	wantFile(t, fs, "/app/main.txt", "main", 0o644, 0, 0)
	if _, ok := fs["/app/other/x"]; ok {
		t.Error("--context-sub-path: a file outside the sub-path was copied")
	}
	if l := config(t, img).Config.Labels["from-env"]; l != "taken-from-env" {
		t.Errorf("--build-arg NAME from the environment: label %q", l)
	}
}

func TestTarContextFromStdinAsKanikoExecutor(t *testing.T) {
	e := newEnv(t)
	base := pushBase(e)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, data := range map[string]string{
		"Dockerfile": "FROM " + base + "\nCOPY hello.txt /\n",
		"hello.txt":  "from a tar on stdin",
	} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
		tw.Write([]byte(data))
	}
	tw.Close()
	zw.Close()
	// kaniko's binary name and flags.
	executor := filepath.Join(t.TempDir(), "executor")
	if err := os.Symlink(e.kiln, executor); err != nil {
		t.Fatal(err)
	}
	dest := e.ref("test/executor:1")
	cmd := exec.Command(executor, "--context", "tar://stdin", "--destination", dest, "--insecure-registry", e.reg.Host,
		"--kaniko-dir", t.TempDir(), "--log-format", "json", "--log-timestamp")
	cmd.Stdin = &buf
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	wantFile(t, flatten(t, e.pull(dest)), "/hello.txt", "from a tar on stdin", 0o644, 0, 0)
	// Every log line is a JSON record with a time.
	sc := bufio.NewScanner(bytes.NewReader(out))
	lines := 0
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("not a JSON log line: %q", sc.Text())
		}
		if rec["time"] == nil || rec["msg"] == nil {
			t.Errorf("record without time or msg: %v", rec)
		}
		lines++
	}
	if lines == 0 {
		t.Error("no log lines")
	}
}

func TestOnbuildTriggersRunInChildStage(t *testing.T) {
	e := newEnv(t)
	base := pushBase(e)
	parent := writeFiles(t, map[string]string{
		"Dockerfile": "FROM " + base + "\nONBUILD COPY trigger.txt /from-trigger/\nONBUILD LABEL triggered=yes\n",
	})
	parentRef := e.ref("test/onbuild-parent:1")
	e.build(parent, "-d", parentRef)
	child := writeFiles(t, map[string]string{"Dockerfile": "FROM " + parentRef + "\nCOPY own.txt /\n", "trigger.txt": "t", "own.txt": "o"})
	dest := e.ref("test/onbuild-child:1")
	e.build(child, "-d", dest)
	img := e.pull(dest)
	fs := flatten(t, img)
	wantFile(t, fs, "/from-trigger/trigger.txt", "t", 0o644, 0, 0)
	wantFile(t, fs, "/own.txt", "o", 0o644, 0, 0)
	c := config(t, img).Config
	if c.Labels["triggered"] != "yes" || len(c.OnBuild) != 0 {
		t.Errorf("labels %v, OnBuild %q (triggers run once, not inherited)", c.Labels, c.OnBuild)
	}
}

func TestMediaTypesFollowTheBase(t *testing.T) {
	e := newEnv(t)
	ociBase := mutate.MediaType(testimage.Image(t, testimage.DefaultEnv, nil,
		testimage.Layer(t, testimage.File{Path: "etc", Dir: true})), types.OCIManifestSchema1)
	ociBase = mutate.ConfigMediaType(ociBase, types.OCIConfigJSON)
	base := e.push("base/oci:1", ociBase)
	dir := writeFiles(t, map[string]string{"Dockerfile": "FROM " + base + "\nCOPY f /\n", "f": "x"})
	for _, c := range []struct {
		compression string
		layer       types.MediaType
	}{{"gzip", types.OCILayer}, {"zstd", types.OCILayerZStd}} {
		dest := e.ref("test/oci:" + c.compression)
		e.build(dir, "-d", dest, "--compression", c.compression)
		img := e.pull(dest)
		if mt, _ := img.MediaType(); mt != types.OCIManifestSchema1 {
			t.Errorf("%s: manifest %s", c.compression, mt)
		}
		layers, _ := img.Layers()
		if mt, _ := layers[len(layers)-1].MediaType(); mt != c.layer {
			t.Errorf("%s: new layer %s, want %s", c.compression, mt, c.layer)
		}
		wantFile(t, flatten(t, img), "/f", "x", 0o644, 0, 0)
	}
	// A Docker base gives Docker media types.
	dockerDest := e.ref("test/docker:1")
	dockerBase := pushBase(e)
	e.build(writeFiles(t, map[string]string{"Dockerfile": "FROM " + dockerBase + "\nCOPY f /\n", "f": "x"}), "-d", dockerDest)
	if mt, _ := e.pull(dockerDest).MediaType(); mt != types.DockerManifestSchema2 {
		t.Errorf("docker base: manifest %s", mt)
	}
}

func TestSingleSnapshotAndParallelStages(t *testing.T) {
	testutil.RequireRoot(t, "RUN with chroot isolation")
	e := newEnv(t)
	base := pushBusybox(e)
	dir := writeFiles(t, map[string]string{
		"Dockerfile": `FROM ` + base + ` AS a
RUN sleep 1 && echo a > /a
FROM ` + base + ` AS b
RUN sleep 1 && echo b > /b
FROM ` + base + `
COPY --from=a /a /
COPY --from=b /b /
RUN echo c > /c && rm /bin/vi
COPY f /f
`,
		"f": "f",
	})
	dest := e.ref("test/single:1")
	out := e.build(dir, "-d", dest, "--single-snapshot", "--jobs", "2")
	img := e.pull(dest)
	cf := config(t, img)
	if n := len(cf.RootFS.DiffIDs); n != 2 {
		t.Errorf("--single-snapshot: %d layers, want the base's and one", n)
	}
	fs := flatten(t, img)
	for p, want := range map[string]string{"/a": "a\n", "/b": "b\n", "/c": "c\n", "/f": "f"} {
		wantFile(t, fs, p, want, 0o644, 0, 0)
	}
	if _, ok := fs["/bin/vi"]; ok {
		t.Error("/bin/vi deleted in the single snapshot is still there")
	}
	// Stages a and b have no dependency: with --jobs 2 they overlap. The log
	// shows b's RUN starting before a's finished.
	aDone := strings.Index(out, `[1/1] RUN sleep 1 && echo a > /a (`)
	bStart := strings.Index(out, `[1/1] RUN sleep 1 && echo b > /b"`)
	if aDone < 0 || bStart < 0 || bStart > aDone {
		t.Errorf("independent stages did not run concurrently:\n%s", out)
	}
}
