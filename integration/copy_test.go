package integration

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kiln-build/kiln/internal/testimage"
)

// base is a small distribution-like image: users, a merged /usr (/bin is a
// symlink) and a directory owned by a user.
func pushBase(e *env) string {
	img := testimage.Image(e.t, testimage.DefaultEnv, []string{"sh"}, testimage.Layer(e.t,
		testimage.File{Path: "etc", Dir: true},
		testimage.File{Path: "etc/passwd", Data: "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/home/app:/bin/sh\n"},
		testimage.File{Path: "etc/group", Data: "root:x:0:\napp:x:1001:\nstaff:x:50:app\n"},
		testimage.File{Path: "usr", Dir: true},
		testimage.File{Path: "usr/bin", Dir: true},
		testimage.File{Path: "usr/bin/tool", Data: "tool", Mode: 0o755},
		testimage.File{Path: "bin", Link: "usr/bin"},
		testimage.File{Path: "home", Dir: true},
		testimage.File{Path: "home/app", Dir: true, UID: 1000, GID: 1001},
	))
	return e.push("base/distro:1", img)
}

func gzipTar(t *testing.T, files map[string]string) string {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for n, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o640, Size: int64(len(data)), Uid: 7, Gid: 8, Typeflag: tar.TypeReg, ModTime: time.Unix(1e9, 0)}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(data))
	}
	tw.Close()
	zw.Close()
	return buf.String()
}

func TestCopyAddAndMetadata(t *testing.T) {
	e := newEnv(t)
	base := pushBase(e)
	dir := writeFiles(t, map[string]string{
		"Dockerfile": `FROM ` + base + `
LABEL org.example.team="build tools" version=1
ENV GREETING="hello world" LIB="$(PREFIX)/lib"
ENV COMBINED=${GREETING}!
COPY --chown=app file.txt /srv/
COPY tree/ /srv/tree/
COPY --chmod=755 run.sh /bin/
ADD bundle.tar.gz /opt/bundle/
COPY <<EOF /etc/motd
Welcome to ${GREETING}
EOF
WORKDIR relative/dir
USER app
WORKDIR /home/app/work
EXPOSE 8080 53/udp 9000-9001
VOLUME ["/data"]
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --timeout=2s --retries=3 CMD ["true"]
SHELL ["/bin/bash", "-c"]
ONBUILD RUN echo child
MAINTAINER kiln team <kiln@example.com>
ENTRYPOINT ["/bin/tool"]
CMD ["--serve"]
`,
		"file.txt":      "file",
		"tree/a.txt":    "a",
		"tree/sub/b.md": "b",
		"run.sh":        "#!/bin/sh\n",
		"bundle.tar.gz": gzipTar(t, map[string]string{"inside.txt": "from the archive"}),
	})
	dest := e.ref("test/copy:1")
	out := e.build(dir, "--destination", dest, "--verbosity", "debug")
	if strings.Contains(out, "Unpacked") {
		t.Errorf("a build without RUN extracted a root filesystem:\n%s", out)
	}
	img := e.pull(dest)
	fs := flatten(t, img)
	wantFile(t, fs, "/srv/file.txt", "file", 0o644, 1000, 1001)
	wantFile(t, fs, "/srv/tree/a.txt", "a", 0o644, 0, 0)
	wantFile(t, fs, "/srv/tree/sub/b.md", "b", 0o644, 0, 0)
	// /bin is a symlink to usr/bin in the base: COPY follows it.
	wantFile(t, fs, "/usr/bin/run.sh", "#!/bin/sh\n", 0o755, 0, 0)
	if e := fs["/bin"]; e.hdr == nil || e.hdr.Typeflag != tar.TypeSymlink {
		t.Errorf("/bin is no longer a symlink: %+v", e.hdr)
	}
	wantFile(t, fs, "/opt/bundle/inside.txt", "from the archive", 0o640, 7, 8)
	wantFile(t, fs, "/etc/motd", "Welcome to hello world\n", 0o644, 0, 0)
	// WORKDIR relative to the default "/", created by root; then created
	// by USER app.
	if e := fs["/relative/dir"]; e.hdr == nil || e.hdr.Uid != 0 {
		t.Errorf("/relative/dir: %+v", e.hdr)
	}
	if e := fs["/home/app/work"]; e.hdr == nil || e.hdr.Typeflag != tar.TypeDir || e.hdr.Uid != 1000 || e.hdr.Gid != 1001 {
		t.Errorf("/home/app/work: %+v", e.hdr)
	}
	// VOLUME only changes the config, as in BuildKit: no directory.
	if e := fs["/data"]; e.hdr != nil {
		t.Errorf("VOLUME created /data: %+v", e.hdr)
	}

	cf := config(t, img)
	c := cf.Config
	want := map[string]any{
		"Labels":     map[string]string{"org.example.team": "build tools", "version": "1"},
		"Env":        []string{testimage.DefaultEnv[0], "GREETING=hello world", "LIB=$(PREFIX)/lib", "COMBINED=hello world!"},
		"WorkingDir": "/home/app/work",
		"User":       "app",
		"Exposed":    map[string]struct{}{"8080/tcp": {}, "53/udp": {}, "9000/tcp": {}, "9001/tcp": {}},
		"Volumes":    map[string]struct{}{"/data": {}},
		"StopSignal": "SIGINT",
		"Shell":      []string{"/bin/bash", "-c"},
		"OnBuild":    []string{"RUN echo child"},
		"Entrypoint": []string{"/bin/tool"},
		"Cmd":        []string{"--serve"},
		"Author":     "kiln team <kiln@example.com>",
	}
	got := map[string]any{
		"Labels": c.Labels, "Env": c.Env, "WorkingDir": c.WorkingDir, "User": c.User, "Exposed": c.ExposedPorts,
		"Volumes": c.Volumes, "StopSignal": c.StopSignal, "Shell": c.Shell, "OnBuild": c.OnBuild,
		"Entrypoint": c.Entrypoint, "Cmd": c.Cmd, "Author": cf.Author,
	}
	for k, w := range want {
		if !reflect.DeepEqual(got[k], w) {
			t.Errorf("config %s = %#v, want %#v", k, got[k], w)
		}
	}
	if h := c.Healthcheck; h == nil || !reflect.DeepEqual(h.Test, []string{"CMD", "true"}) || h.Interval != 5*time.Second || h.Timeout != 2*time.Second || h.Retries != 3 {
		t.Errorf("Healthcheck = %+v", c.Healthcheck)
	}
	// History: one entry per instruction, layers where files changed.
	var layers, empty int
	for _, h := range cf.History {
		if h.EmptyLayer {
			empty++
		} else {
			layers++
		}
	}
	if n := len(cf.RootFS.DiffIDs); layers != n {
		t.Errorf("%d non-empty history entries for %d layers", layers, n)
	}
	if !strings.Contains(cf.History[len(cf.History)-1].CreatedBy, "CMD") {
		t.Errorf("last history entry %q", cf.History[len(cf.History)-1].CreatedBy)
	}
}

func TestEntrypointResetsInheritedCmd(t *testing.T) {
	e := newEnv(t)
	base := pushBase(e) // CMD ["sh"]
	dir := writeFiles(t, map[string]string{"Dockerfile": "FROM " + base + "\nENTRYPOINT /bin/tool --flag\n"})
	dest := e.ref("test/entrypoint:1")
	e.build(dir, "-d", dest)
	c := config(t, e.pull(dest)).Config
	if !reflect.DeepEqual(c.Entrypoint, []string{"/bin/sh", "-c", "/bin/tool --flag"}) || c.Cmd != nil {
		t.Fatalf("Entrypoint %q Cmd %q", c.Entrypoint, c.Cmd)
	}
}

func TestMultiStageCopyFromScratchStages(t *testing.T) {
	e := newEnv(t)
	base := pushBase(e)
	dir := writeFiles(t, map[string]string{
		"Dockerfile": `ARG VARIANT=b
FROM scratch AS a
COPY a.txt /out/
FROM scratch AS b
COPY b.txt /out/
FROM scratch AS unused
COPY missing-file /
FROM a AS combined
COPY --from=b /out/b.txt /out/
FROM ` + base + `
ARG VARIANT
COPY --from=combined /out /collected
COPY --from=1 /out/b.txt /by-index.txt
COPY --from=${VARIANT} /out/b.txt /by-arg.txt
COPY --from=` + base + ` /etc/group /from-image-group
`,
		"a.txt": "A", "b.txt": "B",
	})
	dest := e.ref("test/multistage:1")
	e.build(dir, "-d", dest)
	fs := flatten(t, e.pull(dest))
	wantFile(t, fs, "/collected/a.txt", "A", 0o644, 0, 0)
	wantFile(t, fs, "/collected/b.txt", "B", 0o644, 0, 0)
	wantFile(t, fs, "/by-index.txt", "B", 0o644, 0, 0)
	wantFile(t, fs, "/by-arg.txt", "B", 0o644, 0, 0)
	if fs["/from-image-group"].data == "" {
		t.Error("COPY --from=<image> copied nothing")
	}

	// --target builds a middle stage alone.
	dest2 := e.ref("test/multistage:target")
	e.build(dir, "-d", dest2, "--target", "b")
	fs = flatten(t, e.pull(dest2))
	if _, ok := fs["/out/a.txt"]; ok || fs["/out/b.txt"].data != "B" {
		t.Errorf("--target b: %v", fs)
	}
}

func TestOutputsWithoutPush(t *testing.T) {
	e := newEnv(t)
	base := pushBase(e)
	dir := writeFiles(t, map[string]string{"Dockerfile": "FROM " + base + "\nCOPY f /f\n", "f": "x"})
	out := t.TempDir()
	tarPath, layoutPath := filepath.Join(out, "image.tar"), filepath.Join(out, "layout")
	digestFile, nameFile := filepath.Join(out, "digest"), filepath.Join(out, "name")
	dest := e.ref("test/outputs:v1")
	e.build(dir, "-d", dest, "--no-push", "--tar-path", tarPath, "--oci-layout-path", layoutPath,
		"--digest-file", digestFile, "--image-name-tag-with-digest-file", nameFile)
	digest, err := os.ReadFile(digestFile)
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag(dest)
	img, err := tarball.ImageFromPath(tarPath, &tag)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := img.Digest(); d.String() != string(digest) {
		t.Errorf("tarball digest %s, digest file %s", d, digest)
	}
	if fs := flatten(t, img); fs["/f"].data != "x" {
		t.Errorf("tarball content: /f = %q", fs["/f"].data)
	}
	lp, err := layout.FromPath(layoutPath)
	if err != nil {
		t.Fatal(err)
	}
	idx, _ := lp.ImageIndex()
	m, _ := idx.IndexManifest()
	if len(m.Manifests) != 1 || m.Manifests[0].Digest.String() != string(digest) {
		t.Errorf("layout index %+v, want %s", m.Manifests, digest)
	}
	if b, _ := os.ReadFile(nameFile); string(b) != dest+"@"+string(digest)+"\n" {
		t.Errorf("name file %q", b)
	}
	// --no-push: nothing reached the registry.
	if _, err := e.tryPull(dest); err == nil {
		t.Error("--no-push pushed the image")
	}
}

func TestReproducibleDigests(t *testing.T) {
	e := newEnv(t)
	base := pushBase(e)
	files := map[string]string{"Dockerfile": "FROM " + base + "\nCOPY . /app\nWORKDIR /work\n", "a": "1", "b/c": "2"}
	var digests []string
	for i := 0; i < 2; i++ {
		dir := writeFiles(t, files)
		// Different mtimes on the context files must not matter.
		os.Chtimes(filepath.Join(dir, "a"), time.Now().Add(time.Duration(i)*time.Hour), time.Now().Add(time.Duration(i)*time.Hour))
		digestFile := filepath.Join(t.TempDir(), "digest")
		e.build(dir, "-d", e.ref("test/repro:1"), "--reproducible", "--digest-file", digestFile)
		d, _ := os.ReadFile(digestFile)
		digests = append(digests, string(d))
	}
	if digests[0] != digests[1] {
		t.Fatalf("two reproducible builds gave %s and %s", digests[0], digests[1])
	}
	cf := config(t, e.pull(e.ref("test/repro:1")))
	if !cf.Created.Time.Equal(time.Unix(0, 0)) {
		t.Errorf("created %s, want the epoch", cf.Created)
	}
	// SOURCE_DATE_EPOCH moves the timestamps (and so the digest).
	dir := writeFiles(t, files)
	r := e.run(dir, []string{"build", "--context", dir, "--insecure-registry", e.reg.Host, "--kiln-dir", t.TempDir(),
		"-d", e.ref("test/repro:2"), "--reproducible"}, "SOURCE_DATE_EPOCH=1700000000")
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.out)
	}
	if cf := config(t, e.pull(e.ref("test/repro:2"))); !cf.Created.Time.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("created %s with SOURCE_DATE_EPOCH=1700000000", cf.Created)
	}
}
