package integration

import (
	"archive/tar"
	"fmt"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testimage"
	"github.com/kiln-build/kiln/internal/testutil"
)

// pushBusybox stores the static busybox test image and returns its ref.
func pushBusybox(e *env) string {
	return e.push("base/busybox:1", testimage.Busybox(e.t))
}

func TestRunPackageManagerWorkload(t *testing.T) {
	testutil.RequireRoot(t, "RUN with chroot isolation")
	e := newEnv(t)
	base := pushBusybox(e)
	// Like a package manager: many files created, some deleted again,
	// permissions and owners changed, hard links, a directory replaced by a
	// file and a file by a directory, symlinks.
	dir := writeFiles(t, map[string]string{
		"Dockerfile": `FROM ` + base + `
RUN mkdir -p /opt/pkg/lib /opt/pkg/share/doc /var/lib/pkg \
 && for i in $(seq 1 300); do echo "file $i" > /opt/pkg/lib/f$i.so; done \
 && for i in $(seq 1 50); do echo "doc $i" > /opt/pkg/share/doc/d$i; done \
 && echo installed > /var/lib/pkg/status && mkdir /replace-me && echo x > /replace-me/x \
 && echo file > /becomes-dir
RUN rm -rf /opt/pkg/share/doc && rm /opt/pkg/lib/f1*.so \
 && chmod 4755 /opt/pkg/lib/f2.so && chown 1000:1000 /opt/pkg/lib/f3.so \
 && ln /opt/pkg/lib/f4.so /opt/pkg/lib/f4-hardlink.so && ln -s f5.so /opt/pkg/lib/f5-link.so \
 && rm -r /replace-me && echo now-a-file > /replace-me \
 && rm /becomes-dir && mkdir /becomes-dir && echo inside > /becomes-dir/y \
 && rm /bin/vi
`,
	})
	dest := e.ref("test/run-pkg:1")
	e.build(dir, "-d", dest)
	img := e.pull(dest)
	fs := flatten(t, img)
	for i := 1; i <= 300; i++ {
		p := fmt.Sprintf("/opt/pkg/lib/f%d.so", i)
		_, ok := fs[p]
		deleted := strings.HasPrefix(fmt.Sprint(i), "1")
		if ok == deleted {
			t.Errorf("%s present=%v, want %v", p, ok, !deleted)
		}
	}
	for _, gone := range []string{"/opt/pkg/share/doc", "/opt/pkg/share/doc/d1", "/bin/vi", "/replace-me/x"} {
		if _, ok := fs[gone]; ok {
			t.Errorf("%s should have been deleted", gone)
		}
	}
	wantFile(t, fs, "/opt/pkg/lib/f2.so", "file 2\n", 0o4755, 0, 0)
	wantFile(t, fs, "/opt/pkg/lib/f3.so", "file 3\n", 0o644, 1000, 1000)
	wantFile(t, fs, "/replace-me", "now-a-file\n", 0o644, 0, 0)
	wantFile(t, fs, "/becomes-dir/y", "inside\n", 0o644, 0, 0)
	wantFile(t, fs, "/var/lib/pkg/status", "installed\n", 0o644, 0, 0)
	if e := fs["/opt/pkg/lib/f5-link.so"]; e.hdr == nil || e.hdr.Typeflag != tar.TypeSymlink || e.hdr.Linkname != "f5.so" {
		t.Errorf("symlink f5-link.so: %+v", e.hdr)
	}
	// The hard link is a link within the layer that created it.
	if !hardLinked(t, e, dest, "opt/pkg/lib/f4.so", "opt/pkg/lib/f4-hardlink.so") {
		t.Error("f4.so and f4-hardlink.so are not hard-linked in the layer")
	}
	if n := len(config(t, img).RootFS.DiffIDs); n != 3 {
		t.Errorf("%d layers, want the base's plus one per RUN (3)", n)
	}
}

// hardLinked reports whether the last layer of ref holds b as a hard link
// to a.
func hardLinked(t *testing.T, e *env, ref, a, b string) bool {
	t.Helper()
	layers, err := e.pull(ref).Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[len(layers)-1].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err != nil {
			return false
		}
		if (h.Name == b && h.Typeflag == tar.TypeLink && h.Linkname == a) ||
			(h.Name == a && h.Typeflag == tar.TypeLink && h.Linkname == b) {
			return true
		}
	}
}

func TestRunUserWorkdirEnvAndHeredocs(t *testing.T) {
	testutil.RequireRoot(t, "RUN with chroot isolation")
	e := newEnv(t)
	base := pushBusybox(e)
	dir := writeFiles(t, map[string]string{
		"Dockerfile": `FROM ` + base + `
ARG DECLARED=from-arg
ARG UNUSED_BY_RUN
ENV FROM_ENV=env-value
RUN echo 'builder:x:1500:1600:builder:/home/builder:/bin/sh' >> /etc/passwd \
 && echo 'builders:x:1600:' >> /etc/group && echo 'extra:x:1700:builder' >> /etc/group \
 && mkdir -p /home/builder && chown 1500:1600 /home/builder
USER builder
WORKDIR /home/builder/work
RUN id > ids.txt && pwd > pwd.txt && echo "$HOME $FROM_ENV $DECLARED [$UNDECLARED] [$KILN_SECRET_TEST]" > env.txt
USER root
RUN <<EOF
set -e
echo "first line" > /heredoc1
echo "second line" >> /heredoc1
EOF
RUN <<-EOF
	#!/bin/sh
	echo "from a script: $0" > /heredoc2
	EOF
RUN cat > /heredoc3 <<EOF && cat /heredoc3 > /heredoc3.copy
inline $FROM_ENV
EOF
`,
	})
	dest := e.ref("test/run-user:1")
	r := e.run(dir, []string{"build", "--context", dir, "--insecure-registry", e.reg.Host, "--kiln-dir", t.TempDir(),
		"-d", dest, "--build-arg", "UNDECLARED=no", "--build-arg", "DECLARED=from-cli"}, "KILN_SECRET_TEST=leaked")
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.out)
	}
	fs := flatten(t, e.pull(dest))
	wantFile(t, fs, "/home/builder/work/ids.txt", "uid=1500(builder) gid=1600(builders) groups=1600(builders),1700(extra)\n", 0o644, 1500, 1600)
	wantFile(t, fs, "/home/builder/work/pwd.txt", "/home/builder/work\n", 0o644, 1500, 1600)
	// Build args reach RUN only when declared; kiln's own environment never.
	wantFile(t, fs, "/home/builder/work/env.txt", "/home/builder env-value from-cli [] []\n", 0o644, 1500, 1600)
	wantFile(t, fs, "/heredoc1", "first line\nsecond line\n", 0o644, 0, 0)
	wantFile(t, fs, "/heredoc2", "from a script: /dev/pipes/EOF\n", 0o644, 0, 0)
	wantFile(t, fs, "/heredoc3", "inline env-value\n", 0o644, 0, 0)
	wantFile(t, fs, "/heredoc3.copy", "inline env-value\n", 0o644, 0, 0)
	if e := fs["/home/builder/work"]; e.hdr == nil || e.hdr.Uid != 1500 {
		t.Errorf("WORKDIR created as USER builder: %+v", e.hdr)
	}
	// The history records build args by name only.
	for _, h := range config(t, e.pull(dest)).History {
		if strings.Contains(h.CreatedBy, "from-cli") {
			t.Errorf("history leaks a build-arg value: %q", h.CreatedBy)
		}
	}
}

func TestRunFailureNamesLineAndOutput(t *testing.T) {
	testutil.RequireRoot(t, "RUN with chroot isolation")
	e := newEnv(t)
	base := pushBusybox(e)
	dir := writeFiles(t, map[string]string{
		"Dockerfile": "FROM " + base + "\n\nRUN echo preparing\nRUN echo 'something broke' >&2; exit 3\nRUN echo never\n",
	})
	dest := e.ref("test/run-fail:1")
	r := e.tryBuild(dir, "-d", dest)
	if r.err == nil {
		t.Fatalf("the build succeeded:\n%s", r.out)
	}
	for _, want := range []string{"Dockerfile:4: RUN echo 'something broke' >&2; exit 3: exited with code 3", "something broke"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("output lacks %q:\n%s", want, r.out)
		}
	}
	if strings.Contains(r.out, "never") {
		t.Error("the build went on after the failing RUN")
	}
	if _, err := e.tryPull(dest); err == nil {
		t.Error("a failed build pushed an image")
	}
}

func TestRunMountsAndSecrets(t *testing.T) {
	testutil.RequireRoot(t, "RUN with chroot isolation")
	e := newEnv(t)
	base := pushBusybox(e)
	secretFile := writeFiles(t, map[string]string{"token": "s3cr3t-value"}) + "/token"
	dir := writeFiles(t, map[string]string{
		"Dockerfile": `FROM ` + base + ` AS tools
RUN mkdir /tools && echo tool > /tools/t
FROM ` + base + `
RUN --mount=type=secret,id=token,required cat /run/secrets/token | wc -c > /secret-length
RUN --mount=type=secret,id=token,env=TOKEN sh -c 'test ${#TOKEN} -eq 12 && echo ok > /secret-env'
RUN --mount=type=bind,source=data,target=/mnt/data cp /mnt/data/in.txt /copied
RUN --mount=type=bind,from=tools,source=/tools,target=/t cp /t/t /from-stage
RUN --mount=type=cache,target=/cache echo cached > /cache/c
RUN --mount=type=cache,target=/cache cp /cache/c /from-cache
RUN --mount=type=tmpfs,target=/scratch touch /scratch/x && ls /scratch > /tmpfs-listing
`,
		"data/in.txt": "input",
	})
	dest := e.ref("test/run-mounts:1")
	out := e.build(dir, "-d", dest, "--secret", "id=token,src="+secretFile)
	if strings.Contains(out, "s3cr3t-value") {
		t.Error("the secret appears in the log")
	}
	img := e.pull(dest)
	fs := flatten(t, img)
	wantFile(t, fs, "/secret-length", "12\n", 0o644, 0, 0)
	wantFile(t, fs, "/secret-env", "ok\n", 0o644, 0, 0)
	wantFile(t, fs, "/copied", "input", 0o644, 0, 0)
	wantFile(t, fs, "/from-stage", "tool\n", 0o644, 0, 0)
	wantFile(t, fs, "/from-cache", "cached\n", 0o644, 0, 0)
	wantFile(t, fs, "/tmpfs-listing", "x\n", 0o644, 0, 0)
	for _, p := range []string{"/run/secrets/token", "/mnt/data", "/t", "/cache", "/scratch", "/cache/c"} {
		if _, ok := fs[p]; ok {
			t.Errorf("mount point %s left in the image", p)
		}
	}
	// The secret is in no layer and no history entry.
	layers, _ := img.Layers()
	for _, l := range layers {
		rc, _ := l.Uncompressed()
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			b := make([]byte, h.Size)
			tr.Read(b)
			if strings.Contains(string(b), "s3cr3t-value") {
				t.Errorf("the secret is in a layer, in %s", h.Name)
			}
		}
		rc.Close()
	}
	for _, h := range config(t, img).History {
		if strings.Contains(h.CreatedBy, "s3cr3t-value") {
			t.Errorf("history: %q", h.CreatedBy)
		}
	}
}

// A stage continuing from a stage it is the only user of takes over its
// root filesystem instead of extracting the layers again; the result must be
// the same as if it had.
func TestFromStageContinuesInTheRootFilesystem(t *testing.T) {
	testutil.RequireRoot(t, "RUN with chroot isolation")
	e := newEnv(t)
	base := pushBusybox(e)
	dir := writeFiles(t, map[string]string{
		"Dockerfile": `FROM ` + base + ` AS deps
RUN mkdir /deps && echo lib > /deps/lib && echo tmp > /deps/tmp
COPY extra.txt /deps/extra.txt
FROM deps AS build
RUN rm /deps/tmp && echo app > /app && cat /deps/extra.txt >> /app
FROM deps AS other
RUN echo other > /other
FROM build
COPY --from=other /other /other-copy
RUN test ! -e /deps/tmp && echo final > /final
`,
		"extra.txt": "extra\n",
	})
	dest := e.ref("test/chain:1")
	out := e.build(dir, "-d", dest)
	// deps has two users (build, other): both extract it. build's only user
	// is the last stage, which continues in build's tree.
	if n := strings.Count(out, "continuing in its root filesystem"); n != 1 {
		t.Errorf("%d stages took over their parent's root filesystem, want 1:\n%s", n, out)
	}
	fs := flatten(t, e.pull(dest))
	wantFile(t, fs, "/deps/lib", "lib\n", 0o644, 0, 0)
	wantFile(t, fs, "/deps/extra.txt", "extra\n", 0o644, 0, 0)
	wantFile(t, fs, "/app", "app\nextra\n", 0o644, 0, 0)
	wantFile(t, fs, "/final", "final\n", 0o644, 0, 0)
	wantFile(t, fs, "/other-copy", "other\n", 0o644, 0, 0)
	for _, p := range []string{"/deps/tmp", "/other"} {
		if _, ok := fs[p]; ok {
			t.Errorf("%s is in the image", p)
		}
	}
}
