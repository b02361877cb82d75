package integration

import (
	"encoding/base64"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/testregistry"
	"github.com/kiln-build/kiln/internal/testutil"
)

// SIGTERM ends kiln, with status 143, even while it is blocked reading a
// build context from standard input that never ends. (A FIFO Dockerfile
// no longer blocks: kiln refuses anything but a regular file.)
func TestSIGTERMEndsBlockedBuild(t *testing.T) {
	kiln := testutil.Kiln(t)
	cmd := exec.Command(kiln, "build", "--context", "tar://stdin", "--no-push", "--kiln-dir", t.TempDir())
	cmd.Env = append(os.Environ(), isolatedEnv(t)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	// Half a tar header: kiln is inside the context's read once it has
	// logged its isolation, and nothing but a signal can end that read.
	if _, err := stdin.Write(make([]byte, 256)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "Isolation") {
		select {
		case err := <-exited:
			t.Fatalf("kiln exited before reading its context: %v\n%s", err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("kiln did not start:\n%s", out.String())
		}
	}
	time.Sleep(300 * time.Millisecond)
	select {
	case err := <-exited:
		t.Fatalf("kiln exited while its context was still open: %v\n%s", err, out.String())
	default:
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 143 {
			t.Fatalf("kiln ended with %v, want exit status 143\n%s", err, out.String())
		}
		if !strings.Contains(out.String(), "stopped by SIGTERM") {
			t.Errorf("kiln did not say why it stopped:\n%s", out.String())
		}
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		t.Fatalf("kiln ignored SIGTERM while blocked reading its context\n%s", out.String())
	}
}

// A registry that refuses connections is unreachable, not "plain HTTP".
func TestRefusedConnectionIsUnreachable(t *testing.T) {
	e := newEnv(t)
	seedBase(t, e.reg, "team/base:1")
	dir := copyContext(t, e.ref("team/base:1"))
	r := e.registryBuild(dir, nil, "-d", "127.0.0.1:1/team/app:1")
	wantOutput(t, r, false, `checking push access to "127.0.0.1:1/team/app:1": cannot connect to registry "127.0.0.1:1": connection refused`,
		"Check the host and port")
	if strings.Contains(r.out, "speaks plain HTTP") || strings.Contains(r.out, "--insecure-registry") {
		t.Fatalf("a refused connection is blamed on plain HTTP:\n%s", r.out)
	}
	r = e.kilnIn("", []string{"manifest", "inspect", "127.0.0.1:1/team/app:1"})
	wantOutput(t, r, false, `inspecting "127.0.0.1:1/team/app:1": cannot connect to registry "127.0.0.1:1": connection refused`)
}

// Unknown sub-commands fail, with a suggestion, at every level.
func TestUnknownCommandsFail(t *testing.T) {
	e := &env{t: t, kiln: testutil.Kiln(t)}
	for args, want := range map[string][]string{
		"manifest pusj": {`unknown command "pusj" for "kiln manifest"`, "Did you mean this?", "\tpush\n"},
		"biuld":         {`unknown command "biuld" for "kiln"`, "\tbuild\n"},
		"manifest rn x": {`unknown command "rn" for "kiln manifest"`, "\trm\n"},
		"help manifst":  {`unknown command "manifst" for "kiln"`, "\tmanifest\n"},
	} {
		wantOutput(t, e.kilnIn("", strings.Fields(args)), false, want...)
	}
	wantOutput(t, e.kilnIn("", []string{"manifest"}), true, "Usage:", "inspect", "rm")
}

// Where credentials come from, and what is said when they do not.
func TestCredentialSourcesSaid(t *testing.T) {
	const password = "cred-secret-2718"
	e := newEnv(t, testregistry.WithBasicAuth("ci", password))
	open := testregistry.Start(t)
	seedBase(t, open, "team/base:1")
	dir := copyContext(t, open.Ref("team/base:1"))
	auth := base64.StdEncoding.EncodeToString([]byte("ci:" + password))
	dest := e.ref("team/app:1")
	build := func(extra []string, args ...string) result {
		t.Helper()
		r := e.registryBuild(dir, extra, append([]string{"-d", dest}, args...)...)
		if strings.Contains(r.out, password) {
			t.Fatalf("the password is in the output:\n%s", r.out)
		}
		return r
	}

	t.Run("Kubernetes Secret without items", func(t *testing.T) {
		secret := filepath.Join(t.TempDir(), "docker")
		writeAll(t, secret, map[string]string{
			".dockerconfigjson":        `{"auths": {"` + e.reg.Host + `": {"auth": "` + auth + `"}}}`,
			"..data/.dockerconfigjson": "",
		})
		r := build(nil, "--docker-config", secret)
		wantOutput(t, r, true,
			`Docker config "`+secret+`/config.json" is missing; reading "`+secret+`/.dockerconfigjson" beside it (a Kubernetes Secret`,
			`Registry "`+e.reg.Host+`": using credentials from docker config "`+secret+`/.dockerconfigjson"`)
	})

	t.Run("empty directory", func(t *testing.T) {
		empty := t.TempDir()
		r := build([]string{"DOCKER_CONFIG=" + empty})
		wantOutput(t, r, false, `answered 401 Unauthorized for repository "team/app"`,
			"no credentials (searched environment variables ",
			`docker config "`+empty+`/config.json" (from DOCKER_CONFIG "`+empty+`"): no config.json: directory "`+empty+`" is empty`,
			`docker config "/kaniko/.docker/config.json": `,
			"environment variable DOCKER_AUTH_CONFIG is not set",
			"GitLab CI variables: CI_REGISTRY not set")
	})

	t.Run("empty and stray-space DOCKER_CONFIG", func(t *testing.T) {
		r := build(nil) // isolatedEnv sets DOCKER_CONFIG=""
		wantOutput(t, r, false, `no credentials (searched `, `DOCKER_CONFIG is empty ("")`)
		good := dockerConfigFor(t, e.reg.Host, "ci", password)
		r = build([]string{"DOCKER_CONFIG= " + good})
		wantOutput(t, r, false, `docker config " `+good+`/config.json" (from DOCKER_CONFIG " `+good+`"): no such directory " `+good+`"`)
	})

	t.Run("invalid config.json", func(t *testing.T) {
		broken := filepath.Join(t.TempDir(), "docker")
		writeAll(t, broken, map[string]string{"config.json": "{\n  \"auths\": {\n    \"" + e.reg.Host + "\": {\"auth\": \"" + auth + "\"},\n  }\n}\n"})
		want := `docker config "` + broken + `/config.json" (from --docker-config "` + broken + `"): invalid JSON at line 4, column 3: invalid character '}'`
		// The pull needs no credentials: a warning, and on with the build.
		r := e.registryBuild(dir, nil, "--no-push", "--docker-config", broken)
		wantOutput(t, r, true, "Skipping "+want)
		// The push needs them: the error says where the file is broken.
		r = build(nil, "--docker-config", broken)
		wantOutput(t, r, false, `answered 401 Unauthorized`, want)
	})

	t.Run("broken entry for another registry", func(t *testing.T) {
		cfg := filepath.Join(t.TempDir(), "docker")
		writeAll(t, cfg, map[string]string{"config.json": `{"auths": {
			"unrelated.example.com": {"auth": "%%% not base64"},
			"` + e.reg.Host + `": {"auth": "` + auth + `"}}}`})
		r := build(nil, "--docker-config", cfg)
		wantOutput(t, r, true, `key "unrelated.example.com" is unusable`, `Push access to "`+e.ref("team/app")+`" confirmed`)
	})
}

func writeAll(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
