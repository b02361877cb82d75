package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
)

// Eight builds at once on one machine, sharing a --kiln-dir (a CI volume)
// and a locked cache mount: every image is its own build's, no secret
// crosses from one build to another, the cache saw every build once and
// in turn, and the work directory is left clean.
func TestConcurrentBuildsShareKilnDir(t *testing.T) {
	testutil.RequireRoot(t, "RUN with chroot isolation")
	e := newEnv(t)
	base := pushBusybox(e)
	kilnDir := t.TempDir()
	dir := writeFiles(t, map[string]string{"Dockerfile": "FROM " + base + `
ARG ID
RUN --mount=type=cache,target=/cache,sharing=locked \
    echo "start $ID" >> /cache/log && sleep 0.2 && echo "end $ID" >> /cache/log
RUN --mount=type=secret,id=tok echo "$ID" > /id && cat /run/secrets/tok | wc -c > /secret-length
`})
	const n = 8
	var wg sync.WaitGroup
	results := make([]result, n)
	for i := 0; i < n; i++ {
		secret := filepath.Join(t.TempDir(), "tok")
		os.WriteFile(secret, []byte(fmt.Sprintf("secret-of-build-%d", i)), 0o600)
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = e.run(dir, []string{"build", "--context", dir, "--insecure-registry", e.reg.Host, "--kiln-dir", kilnDir,
				"-d", e.ref(fmt.Sprintf("test/concurrent-%d:1", i)), "--build-arg", fmt.Sprintf("ID=%d", i), "--secret", "id=tok,src=" + secret})
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("build %d: %v\n%s", i, r.err, r.out)
		}
	}
	for i := 0; i < n; i++ {
		fs := flatten(t, e.pull(e.ref(fmt.Sprintf("test/concurrent-%d:1", i))))
		wantFile(t, fs, "/id", fmt.Sprintf("%d\n", i), 0o644, 0, 0)
		for p, f := range fs {
			if strings.Contains(f.data, "secret-of-build") || strings.HasPrefix(p, "/cache") {
				t.Errorf("build %d: %s holds what it should not: %q", i, p, f.data)
			}
		}
	}
	// The cache: each build's start and end, never interleaved.
	logs, _ := filepath.Glob(filepath.Join(kilnDir, "cache", "*", "log"))
	if len(logs) != 1 {
		t.Fatalf("cache logs %q", logs)
	}
	data, _ := os.ReadFile(logs[0])
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 2*n {
		t.Fatalf("cache log:\n%s", data)
	}
	var ids []string
	for i := 0; i < len(lines); i += 2 {
		id := strings.TrimPrefix(lines[i], "start ")
		if lines[i+1] != "end "+id {
			t.Errorf("two builds used the locked cache at once:\n%s", data)
			break
		}
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if strings.Join(ids, ",") != "0,1,2,3,4,5,6,7" {
		t.Errorf("builds in the cache log: %q", ids)
	}
	// Nothing is left of the builds but the cache and the pulled layers.
	entries, _ := os.ReadDir(kilnDir)
	for _, en := range entries {
		if strings.HasPrefix(en.Name(), "build-") || strings.HasPrefix(en.Name(), ".pending-") {
			t.Errorf("left in --kiln-dir: %s", en.Name())
		}
	}
}
