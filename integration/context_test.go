package integration

import (
	"encoding/pem"
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

// TestBuildFromRemoteContexts builds from a git repository, over https
// with a token, at a commit behind its branch's tip, and from a tar.gz
// downloaded over https.
func TestBuildFromRemoteContexts(t *testing.T) {
	testutil.RequireFile(t, gitBackend, "git")
	e := newEnv(t)
	const token = "tok-4242-secret"

	// ctx.git: main is C1 (app/hello.txt "v1") then C2 ("v2").
	root := t.TempDir()
	work := filepath.Join(t.TempDir(), "work")
	gitCmd(t, root, "init", "-q", "--bare", "-b", "main", "ctx.git")
	gitCmd(t, root, "clone", "-q", filepath.Join(root, "ctx.git"), work)
	writeTree(t, work, map[string]string{
		"Dockerfile":     "FROM scratch\nCOPY . /wrong/\n",
		"app/Dockerfile": "FROM scratch\nCOPY . /srv/\n",
		"app/hello.txt":  "v1",
	})
	gitCmd(t, work, "add", "-A")
	gitCmd(t, work, "commit", "-q", "-m", "v1")
	c1 := gitCmd(t, work, "rev-parse", "HEAD")
	writeTree(t, work, map[string]string{"app/hello.txt": "v2"})
	gitCmd(t, work, "commit", "-q", "-a", "-m", "v2")
	gitCmd(t, work, "push", "-q", "origin", "main")

	backend := &cgi.Handler{Path: gitBackend, Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "HOME=" + root}}
	gitSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// kaniko's form of a token: the user name, without a password.
		if u, p, _ := r.BasicAuth(); u != token || p != "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, r)
	}))
	gitSrv.Config.ErrorLog = log.New(io.Discard, "", 0)
	gitSrv.StartTLS()
	defer gitSrv.Close()

	// git:// is fetched over https, as in kaniko.
	spec := "git://" + strings.TrimPrefix(gitSrv.URL, "https://") + "/ctx.git#refs/heads/main#" + c1
	dest := e.ref("test/git-context:1")
	r := e.run(t.TempDir(), []string{"build", "--context", spec, "--context-sub-path", "app", "--git", "insecure-skip-tls=true",
		"--insecure-registry", e.reg.Host, "--kiln-dir", t.TempDir(), "--destination", dest}, "GIT_TOKEN="+token)
	if r.err != nil {
		t.Fatalf("kiln build from %s: %v\n%s", spec, r.err, r.out)
	}
	if strings.Contains(r.out, token) {
		t.Errorf("the output shows the token:\n%s", r.out)
	}
	fs := flatten(t, e.pull(dest))
	wantFile(t, fs, "/srv/hello.txt", "v1", 0o644, 0, 0)
	wantFile(t, fs, "/srv/Dockerfile", "FROM scratch\nCOPY . /srv/\n", 0o644, 0, 0)
	if _, ok := fs["/wrong"]; ok {
		t.Error("the Dockerfile outside the sub-path was used")
	}

	// An archive over https, from a server whose certificate the system
	// trusts (SSL_CERT_FILE).
	archive := gzipTar(t, map[string]string{"Dockerfile": "FROM scratch\nCOPY . /opt/\n", "data.txt": "from the archive"})
	tarSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ctx.tar.gz" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(archive))
	}))
	defer tarSrv.Close()
	certFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tarSrv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	dest = e.ref("test/url-context:1")
	r = e.run(t.TempDir(), []string{"build", "--context", tarSrv.URL + "/ctx.tar.gz",
		"--insecure-registry", e.reg.Host, "--kiln-dir", t.TempDir(), "--destination", dest}, "SSL_CERT_FILE="+certFile)
	if r.err != nil {
		t.Fatalf("kiln build from %s/ctx.tar.gz: %v\n%s", tarSrv.URL, r.err, r.out)
	}
	fs = flatten(t, e.pull(dest))
	wantFile(t, fs, "/opt/data.txt", "from the archive", 0o640, 0, 0)

	r = e.run(t.TempDir(), []string{"build", "--context", tarSrv.URL + "/missing.tar.gz", "--no-push", "--kiln-dir", t.TempDir()}, "SSL_CERT_FILE="+certFile)
	if want := `build context "` + tarSrv.URL + `/missing.tar.gz": the server answered "404 Not Found"`; r.err == nil || !strings.Contains(r.out, want) {
		t.Errorf("building from a missing archive: %v, want an error %q:\n%s", r.err, want, r.out)
	}
}

// gitCmd runs git in dir with a fixed identity and no user or system
// configuration, returning its trimmed output.
func gitCmd(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=kiln", "GIT_AUTHOR_EMAIL=kiln@example.com",
		"GIT_COMMITTER_NAME=kiln", "GIT_COMMITTER_EMAIL=kiln@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// writeTree writes files (name: content) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
