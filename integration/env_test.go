package integration

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kiln-build/kiln/internal/testregistry"
	"github.com/kiln-build/kiln/internal/testutil"
)

// env is one test's registry and kiln binary.
type env struct {
	t    *testing.T
	reg  *testregistry.Registry
	kiln string
}

func newEnv(t *testing.T, opts ...testregistry.Option) *env {
	t.Helper()
	return &env{t: t, reg: testregistry.Start(t, opts...), kiln: testutil.Kiln(t)}
}

// ref names a repository of the test registry.
func (e *env) ref(repoTag string) string { return e.reg.Ref(repoTag) }

// push stores img in the test registry.
func (e *env) push(repoTag string, img v1.Image) string {
	e.t.Helper()
	ref, err := name.ParseReference(e.ref(repoTag), name.Insecure)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := remote.Write(ref, img, e.reg.RemoteOptions()...); err != nil {
		e.t.Fatalf("pushing %s: %v", ref, err)
	}
	return ref.String()
}

// pull fetches an image from the test registry.
func (e *env) pull(ref string) v1.Image {
	e.t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		e.t.Fatal(err)
	}
	img, err := remote.Image(r, e.reg.RemoteOptions()...)
	if err != nil {
		e.t.Fatalf("pulling %s: %v", ref, err)
	}
	return img
}

// tryPull fetches an image's manifest, returning the error.
func (e *env) tryPull(ref string) (v1.Image, error) {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return nil, err
	}
	return remote.Image(r, e.reg.RemoteOptions()...)
}

// result is a finished kiln run.
type result struct {
	out string
	err error
}

// run runs kiln with args in dir and returns its combined output.
func (e *env) run(dir string, args []string, envv ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.kiln, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), envv...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return result{out: out.String(), err: err}
}

// build runs `kiln build` on the context dir with the test registry
// reachable over plain HTTP, failing the test if the build fails.
func (e *env) build(dir string, args ...string) string {
	e.t.Helper()
	r := e.tryBuild(dir, args...)
	if r.err != nil {
		e.t.Fatalf("kiln build %s: %v\n%s", strings.Join(args, " "), r.err, r.out)
	}
	return r.out
}

func (e *env) tryBuild(dir string, args ...string) result {
	e.t.Helper()
	full := append([]string{"build", "--context", dir, "--insecure-registry", e.reg.Host, "--kiln-dir", e.t.TempDir()}, args...)
	return e.run(dir, full)
}

// writeFiles creates a directory with the given files ("name": content; a
// name ending in "/" is a directory).
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for n, content := range files {
		p := filepath.Join(dir, n)
		if strings.HasSuffix(n, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// entry is one path of a flattened image.
type entry struct {
	hdr  *tar.Header
	data string
}

// flatten returns the image's filesystem as its layers stack up.
func flatten(t *testing.T, img v1.Image) map[string]entry {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	out := map[string]entry{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out["/"+strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")] = entry{hdr: h, data: string(b)}
	}
	return out
}

// config returns the image's config file.
func config(t *testing.T, img v1.Image) *v1.ConfigFile {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cf
}

// wantFile checks a regular file's content, mode and owner.
func wantFile(t *testing.T, fs map[string]entry, p, data string, mode int64, uid, gid int) {
	t.Helper()
	e, ok := fs[p]
	if !ok {
		t.Errorf("%s: missing", p)
		return
	}
	if e.hdr.Typeflag != tar.TypeReg {
		t.Errorf("%s: type %c, want a regular file", p, e.hdr.Typeflag)
		return
	}
	if e.data != data {
		t.Errorf("%s: content %q, want %q", p, e.data, data)
	}
	if e.hdr.Mode&0o7777 != mode || e.hdr.Uid != uid || e.hdr.Gid != gid {
		t.Errorf("%s: mode %o %d:%d, want %o %d:%d", p, e.hdr.Mode&0o7777, e.hdr.Uid, e.hdr.Gid, mode, uid, gid)
	}
}
