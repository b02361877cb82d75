package executor

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/pkg/buildcontext"
	"github.com/kiln-build/kiln/pkg/sandbox"
	"github.com/kiln-build/kiln/pkg/workdir"
)

func TestRunMountsReleasedOnEveryPath(t *testing.T) {
	df := `FROM base AS src
RUN write /from-stage stage
FROM base
COPY a.txt /a.txt
RUN --mount=type=bind,target=/ctx --mount=type=bind,from=src,source=/from-stage,target=/s,rw --mount=type=cache,target=/cache,sharing=locked --mount=type=secret,id=tok,target=/run/secrets/tok --mount=type=secret,id=tok,env=TOKEN --mount=type=tmpfs,target=/tmp/t copy /ctx/a.txt /from-ctx; copy /s /from-s; write /s changed; append /cache/log run; copy /run/secrets/tok /leak-file; env TOKEN /leak-env; write /tmp/t/x gone; ${EXTRA}
`
	for _, tc := range []struct {
		name  string
		extra string
		code  int
	}{{"success", "", 0}, {"failure", "exit 3", 3}} {
		t.Run(tc.name, func(t *testing.T) {
			cacheDir := t.TempDir()
			tb := newTestBuild(t, strings.ReplaceAll(df, "${EXTRA}", tc.extra), "", nil).with(
				WithBuildContext(contextFiles(map[string]string{"a.txt": "A"})),
				WithSecrets(map[string][]byte{"tok": []byte("s3cr3t")}),
				WithCacheDir(cacheDir),
			)
			var out bytes.Buffer
			tb.with(WithRunOutput(&out))
			b := tb.builder()
			img, err := tb.runErr(b)
			if tc.code != 0 {
				var exit *sandbox.ExitError
				if !errors.As(err, &exit) || exit.Code != tc.code || !strings.Contains(err.Error(), "exiting with 3") {
					t.Fatalf("err = %v, want exit code %d with the command's output", err, tc.code)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			// Whatever happened, every acquired mount was released: no
			// copy, secret or script is left in the work dir, and the
			// cache's lock is free.
			for _, left := range treeOf(t, tb.workDir) {
				if base := filepath.Base(left); strings.HasPrefix(base, "mount-") || strings.HasPrefix(base, "secret-") ||
					strings.HasPrefix(base, "heredoc-") || strings.HasPrefix(base, "volume-") {
					t.Errorf("left in the work dir: %s", left)
				}
			}
			locks, _ := filepath.Glob(filepath.Join(cacheDir, "*.lock"))
			for _, l := range locks {
				if unlock, ok, err := workdir.TryLock(l); err != nil || !ok {
					t.Errorf("cache lock %s still held (%v)", l, err)
				} else {
					unlock()
				}
			}
			logs, _ := filepath.Glob(filepath.Join(cacheDir, "*", "log"))
			if len(logs) != 1 {
				t.Fatalf("cache content: %q", logs)
			}
			if data, _ := os.ReadFile(logs[0]); string(data) != "run" {
				t.Errorf("cache log = %q", data)
			}
			if tc.code != 0 {
				return
			}
			files := flatten(t, img)
			if files["/from-ctx"].data != "A" || files["/from-s"].data != "stage" || files["/leak-file"].data != "s3cr3t" || files["/leak-env"].data != "s3cr3t" {
				t.Errorf("what the RUN read through its mounts: %+v", files)
			}
			// Mount targets and what was written through them are not
			// part of the layer.
			for _, p := range []string{"/ctx", "/s", "/cache", "/run/secrets/tok", "/tmp/t", "/tmp/t/x"} {
				if _, ok := files[p]; ok {
					t.Errorf("%s is in the image", p)
				}
			}
			// The secret is in the files the command chose to write, and
			// nowhere else: not in the config or the history.
			raw, err := img.RawConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(raw, []byte("s3cr3t")) {
				t.Error("the secret is in the image config")
			}
			// The writable bind's change stayed private.
			src := flatten(t, mustStage(t, b, "src"))
			if src["/from-stage"].data != "stage" {
				t.Errorf("rw bind changed its source: %+v", src["/from-stage"])
			}
		})
	}
}

func mustStage(t *testing.T, b *Builder, name string) v1.Image {
	t.Helper()
	for s, f := range b.results {
		if s.Name == name && f.res != nil {
			return f.res.image
		}
	}
	t.Fatalf("no stage %q", name)
	return nil
}

func TestRunBindOfContextHonoursDockerignore(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string]string{"app.txt": "app", ".env": "API_KEY=x", ".dockerignore": ".env\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, mode := range []string{"", ",rw"} {
		t.Run("bind"+mode, func(t *testing.T) {
			bctx, err := buildcontext.Open(context.Background(), dir, buildcontext.WithWorkDir(t.TempDir()))
			if err != nil {
				t.Fatal(err)
			}
			defer bctx.Close()
			if err := bctx.LoadIgnore(""); err != nil {
				t.Fatal(err)
			}
			df := "FROM base\nRUN --mount=type=bind,target=/ctx" + mode + " copy /ctx/app.txt /app; copy /ctx/.env /leak\n"
			tb := newTestBuild(t, df, "", nil).with(WithBuildContext(bctx))
			_, err = tb.runErr(tb.builder())
			if err == nil || !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a file .dockerignore excludes was readable through the mount: err = %v", err)
			}
			df = "FROM base\nRUN --mount=type=bind,target=/ctx" + mode + " copy /ctx/app.txt /app\n"
			img := newTestBuild(t, df, "", nil).with(WithBuildContext(bctx)).run()
			if got := flatten(t, img)["/app"].data; got != "app" {
				t.Errorf("/app = %q", got)
			}
		})
	}
}
