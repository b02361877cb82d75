package integration

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
)

// requireThrowawayRoot skips a test that runs kiln's in-place isolation
// inside a throwaway root it pivots into, when this machine cannot.
func requireThrowawayRoot(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t, "mount namespaces and pivot_root for the throwaway root")
	testutil.RequireFile(t, "/bin/busybox", "busybox-static")
	for _, tool := range []string{"unshare", "pivot_root", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found (Debian package util-linux / mount)", tool)
		}
	}
}

// TestInPlaceInThrowawayRoot runs kiln with in-place isolation (kaniko's
// model: the image is built in "/" of the container kiln runs in) inside a
// mount namespace whose root is a scratch directory standing in for the
// executor container. Two builds run in the same container, like two
// Jenkins stages; afterwards the container must hold exactly what it held
// before (its own files restored, the build's files gone, the workspace,
// the debug shell and kiln's directory untouched).
func TestInPlaceInThrowawayRoot(t *testing.T) {
	requireThrowawayRoot(t)
	e := newEnv(t)
	base := pushBusybox(e)

	// The container: kiln at /kiln/kiln, a debug shell at /busybox, a file
	// the executor image ships, and an empty workspace mount point.
	root := t.TempDir()
	mustMkdir(t, root, "kiln", "busybox", "workspace", "etc/ssl", "proc", "dev", "sys", "tmp", "oldroot")
	copyFile(t, testutil.Kiln(t), filepath.Join(root, "kiln/kiln"), 0o755)
	copyFile(t, "/bin/busybox", filepath.Join(root, "busybox/busybox"), 0o755)
	for _, applet := range []string{"sh", "umount", "rmdir", "cat"} {
		if err := os.Symlink("busybox", filepath.Join(root, "busybox", applet)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "etc/ssl/shipped.pem"), []byte("shipped by the executor image"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := listTree(t, root, "kiln", "workspace", "oldroot", "proc", "dev", "sys")

	// The workspace: what a CI system mounts (the context, outputs).
	// RUN --mount works without mounting: copies, moves and placeholders.
	workspace := writeFiles(t, map[string]string{
		"Dockerfile": `FROM ` + base + ` AS build
RUN mkdir -p /out && echo built > /out/artifact && echo leftover > /etc/build-only
FROM ` + base + `
COPY --from=build /out/artifact /app/artifact
RUN echo "second stage" > /app/note && rm /bin/vi
RUN --mount=type=cache,target=/var/cache/demo sh -c 'echo run >> /var/cache/demo/log; wc -l < /var/cache/demo/log > /app/cache-runs'
RUN --mount=type=bind,source=ctx.txt,target=/mnt/ctx.txt cp /mnt/ctx.txt /app/from-bind
RUN --mount=type=secret,id=tok,required wc -c < /run/secrets/tok > /app/secret-size
RUN --mount=type=tmpfs,target=/tmp touch /tmp/in-tmpfs && ls /tmp > /app/tmpfs-listing
RUN <<EOF
#!/bin/sh
echo "script ran" > /app/script
EOF
`,
		"ctx.txt": "from the context\n",
		"token":   "s3cr3t",
	})

	script := `set -e
mount --make-rprivate /
mount --bind "$ROOT" "$ROOT"
mount --bind "$WORKSPACE" "$ROOT/workspace"
mount -t proc proc "$ROOT/proc"
mount --rbind /dev "$ROOT/dev"
mount --rbind /sys "$ROOT/sys"
cd "$ROOT"
pivot_root . oldroot
exec /busybox/sh -c 'umount -l /oldroot && rmdir /oldroot && cd /workspace &&
  for dest in "$DEST1" "$DEST2"; do
    /kiln/kiln build --isolation in-place --force --context /workspace --destination "$dest" \
      --insecure-registry "$REGISTRY" --digest-file "/workspace/digest-${dest##*:}" --secret id=tok,src=/workspace/token || exit 1
  done
  /busybox/cat /etc/ssl/shipped.pem > /workspace/shipped-after'
`
	cmd := exec.Command("unshare", "--mount", "--fork", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "ROOT="+root, "WORKSPACE="+workspace, "REGISTRY="+e.reg.Host,
		"DEST1="+e.ref("test/inplace:first"), "DEST2="+e.ref("test/inplace:second"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("in-place builds failed: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "Isolation in-place") {
		t.Errorf("kiln did not use in-place isolation:\n%s", out.String())
	}

	// Both builds pushed the right image, without the container's files;
	// the cache kiln keeps in /kiln carried over to the second build.
	for i, tag := range []string{"first", "second"} {
		fs := flatten(t, e.pull(e.ref("test/inplace:"+tag)))
		wantFile(t, fs, "/app/artifact", "built\n", 0o644, 0, 0)
		wantFile(t, fs, "/app/note", "second stage\n", 0o644, 0, 0)
		wantFile(t, fs, "/app/cache-runs", fmt.Sprintf("%d\n", i+1), 0o644, 0, 0)
		wantFile(t, fs, "/app/from-bind", "from the context\n", 0o644, 0, 0)
		wantFile(t, fs, "/app/secret-size", "6\n", 0o644, 0, 0)
		wantFile(t, fs, "/app/tmpfs-listing", "in-tmpfs\n", 0o644, 0, 0)
		wantFile(t, fs, "/app/script", "script ran\n", 0o644, 0, 0)
		for _, p := range []string{"/bin/vi", "/etc/build-only", "/kiln", "/kiln/kiln", "/workspace", "/busybox", "/etc/ssl/shipped.pem", "/out",
			"/var/cache/demo", "/mnt", "/mnt/ctx.txt", "/run/secrets", "/tmp/in-tmpfs"} {
			if _, ok := fs[p]; ok {
				t.Errorf("%s: %s is in the image", tag, p)
			}
		}
	}
	// The container is back to what it shipped; the workspace keeps what
	// the builds wrote there.
	after := listTree(t, root, "kiln", "workspace", "oldroot", "proc", "dev", "sys")
	if strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Errorf("the container changed:\nbefore:\n%s\nafter:\n%s", strings.Join(before, "\n"), strings.Join(after, "\n"))
	}
	if b, err := os.ReadFile(filepath.Join(workspace, "shipped-after")); err != nil || string(b) != "shipped by the executor image" {
		t.Errorf("the executor image's file after the builds: %q, %v", b, err)
	}
	for _, f := range []string{"Dockerfile", "digest-first", "digest-second"} {
		if _, err := os.Stat(filepath.Join(workspace, f)); err != nil {
			t.Errorf("workspace: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "kiln/kiln")); err != nil {
		t.Errorf("kiln's own binary: %v", err)
	}
}

func mustMkdir(t *testing.T, root string, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
}

// listTree describes every path under root (type, mode, owner, size)
// except the subtrees named in skip.
func listTree(t *testing.T, root string, skip ...string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		for _, s := range skip {
			if rel == s {
				return filepath.SkipDir
			}
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		size := info.Size()
		if info.IsDir() {
			size = 0
		}
		out = append(out, rel+" "+info.Mode().String()+" "+ownerString(info)+" "+itoa(size))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func ownerString(info fs.FileInfo) string {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return strconv.Itoa(int(st.Uid)) + ":" + strconv.Itoa(int(st.Gid))
	}
	return "?"
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
