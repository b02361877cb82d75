package buildcontext

import (
	"io"
	"log"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
)

// gitBackend is git's smart HTTP server program in Debian's git package.
const gitBackend = "/usr/lib/git-core/git-http-backend"

// runGit runs git in dir with a fixed identity and no user or system
// configuration, returning its trimmed output.
func runGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"HOME="+dir, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=kiln", "GIT_AUTHOR_EMAIL=kiln@example.com",
		"GIT_COMMITTER_NAME=kiln", "GIT_COMMITTER_EMAIL=kiln@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// gitFixture is a directory of bare repositories, served by gitServer:
//
//	lib.git   main: L1 (lib.txt "lib v1"), L2 (lib.txt "lib v2")
//	repo.git  main: C1 (version.txt "1", Dockerfile, app/Dockerfile,
//	                    app/.dockerignore),
//	                C2 (version.txt "2", submodule lib at L1, which is not
//	                    lib's tip; annotated tag v2),
//	                C3 (version.txt "3"; lightweight tag light)
//	          feature: C1, F (version.txt "feature")
//	          refs/pull/1/head: C1, P (version.txt "pull"), on no branch
type gitFixture struct {
	root           string
	c1, c2, c3, l1 string
}

func newGitFixture(t *testing.T) *gitFixture {
	t.Helper()
	testutil.RequireFile(t, gitBackend, "git")
	root := t.TempDir()
	f := &gitFixture{root: root}
	for _, name := range []string{"lib.git", "repo.git"} {
		runGit(t, root, "init", "-q", "--bare", "-b", "main", name)
	}

	lib := filepath.Join(t.TempDir(), "lib")
	runGit(t, root, "clone", "-q", filepath.Join(root, "lib.git"), lib)
	commitFiles(t, lib, map[string]string{"lib.txt": "lib v1"})
	f.l1 = runGit(t, lib, "rev-parse", "HEAD")
	commitFiles(t, lib, map[string]string{"lib.txt": "lib v2"})
	runGit(t, lib, "push", "-q", "origin", "HEAD:main")

	work := filepath.Join(t.TempDir(), "work")
	runGit(t, root, "clone", "-q", filepath.Join(root, "repo.git"), work)
	f.c1 = commitFiles(t, work, map[string]string{
		"Dockerfile":        "FROM scratch\nCOPY . /\n",
		"version.txt":       "1",
		"app/Dockerfile":    "FROM scratch\n",
		"app/.dockerignore": "ignored\n",
		"app/ignored":       "i",
	})
	runGit(t, work, "-c", "protocol.file.allow=always", "submodule", "add", "-q", "../lib.git", "lib")
	runGit(t, filepath.Join(work, "lib"), "checkout", "-q", f.l1)
	runGit(t, work, "add", "lib")
	f.c2 = commitFiles(t, work, map[string]string{"version.txt": "2"})
	runGit(t, work, "tag", "-a", "-m", "version 2", "v2")
	f.c3 = commitFiles(t, work, map[string]string{"version.txt": "3"})
	runGit(t, work, "tag", "light")
	runGit(t, work, "checkout", "-q", "-b", "feature", f.c1)
	commitFiles(t, work, map[string]string{"version.txt": "feature"})
	runGit(t, work, "checkout", "-q", "--detach", f.c1)
	pull := commitFiles(t, work, map[string]string{"version.txt": "pull"})
	runGit(t, work, "push", "-q", "origin", "main", "feature", "v2", "light", pull+":refs/pull/1/head")
	return f
}

// commitFiles writes files into the worktree dir, commits everything and
// returns the commit's hash.
func commitFiles(t *testing.T, dir string, files map[string]string) string {
	t.Helper()
	writeTree(t, dir, files)
	runGit(t, dir, "add", "-A")
	runGit(t, dir, "commit", "-q", "-m", "commit")
	return runGit(t, dir, "rev-parse", "HEAD")
}

// gitServerConfig configures startGitServer.
type gitServerConfig struct {
	tls bool
	// auth, when set, decides on each request's basic credentials.
	auth func(user, password string) bool
	// byHash lets clients fetch reachable commits by their hash.
	byHash bool
}

// startGitServer serves the bare repositories of root over git's smart
// HTTP protocol (git http-backend, run through CGI) on 127.0.0.1, and
// returns the server's URL.
func startGitServer(t *testing.T, root string, cfg gitServerConfig) string {
	t.Helper()
	env := []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "HOME=" + root, "GIT_CONFIG_NOSYSTEM=1"}
	if cfg.byHash {
		env = append(env, "GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=uploadpack.allowReachableSHA1InWant", "GIT_CONFIG_VALUE_0=true")
	}
	backend := &cgi.Handler{Path: gitBackend, Env: env, Stderr: testWriter{t}}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cfg.auth != nil {
			user, password, _ := r.BasicAuth()
			if !cfg.auth(user, password) {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		backend.ServeHTTP(w, r)
	})
	srv := httptest.NewUnstartedServer(handler)
	// Refused certificates are what some tests are about.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if cfg.tls {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv.URL
}

// testWriter logs what is written to it in the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
