package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/kiln-build/kiln/internal/faultproxy"
	"github.com/kiln-build/kiln/internal/testimage"
	"github.com/kiln-build/kiln/internal/testregistry"
	"github.com/kiln-build/kiln/pkg/registry"
)

// isolatedEnv keeps the machine's credentials out of a kiln run: no docker
// config but the test's, no CI variables.
func isolatedEnv(t *testing.T, extra ...string) []string {
	home := t.TempDir()
	env := []string{"HOME=" + home, "DOCKER_CONFIG=", "REGISTRY_AUTH_FILE=", "DOCKER_AUTH_CONFIG=",
		"CI_REGISTRY=", "CI_DEPENDENCY_PROXY_SERVER="}
	return append(env, extra...)
}

// kilnIn runs kiln with args and stdin in an isolated environment plus
// extra variables.
func (e *env) kilnIn(stdin string, args []string, extra ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.kiln, args...)
	cmd.Dir = e.t.TempDir()
	cmd.Env = append(os.Environ(), isolatedEnv(e.t, extra...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return result{out: out.String(), err: err}
}

// registryBuild runs `kiln build` on dir with args only: no registry is
// marked insecure unless args say so.
func (e *env) registryBuild(dir string, extra []string, args ...string) result {
	e.t.Helper()
	full := append([]string{"build", "--context", dir, "--kiln-dir", e.t.TempDir()}, args...)
	return e.kilnIn("", full, extra...)
}

// seedBase pushes a one-file base image to reg as repoTag.
func seedBase(t *testing.T, reg *testregistry.Registry, repoTag string) {
	t.Helper()
	img := testimage.Image(t, testimage.DefaultEnv, nil, testimage.Layer(t,
		testimage.File{Path: "etc", Dir: true},
		testimage.File{Path: "etc/base-release", Data: "base\n"}))
	ref, err := name.ParseReference(reg.Ref(repoTag))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, reg.RemoteOptions()...); err != nil {
		t.Fatalf("seeding %s: %v", ref, err)
	}
}

// copyContext is a build context whose Dockerfile adds a file to base.
func copyContext(t *testing.T, base string) string {
	return writeFiles(t, map[string]string{"Dockerfile": "FROM " + base + "\nCOPY hello /hello\n", "hello": "hello\n"})
}

// head returns the digest repoTag points at in reg, or the error.
func head(reg *testregistry.Registry, repoTag string) (v1.Hash, error) {
	ref, err := name.ParseReference(reg.Ref(repoTag))
	if err != nil {
		return v1.Hash{}, err
	}
	desc, err := remote.Head(ref, reg.RemoteOptions()...)
	if err != nil {
		return v1.Hash{}, err
	}
	return desc.Digest, nil
}

func wantOutput(t *testing.T, r result, ok bool, parts ...string) {
	t.Helper()
	if ok && r.err != nil {
		t.Fatalf("kiln failed: %v\n%s", r.err, r.out)
	}
	if !ok && r.err == nil {
		t.Fatalf("kiln succeeded, want a failure\n%s", r.out)
	}
	// Log lines quote their message and escape the quotes in it.
	out := strings.ReplaceAll(r.out, `\"`, `"`)
	for _, p := range parts {
		if !strings.Contains(out, p) {
			t.Fatalf("output lacks %q:\n%s", p, r.out)
		}
	}
}

func dockerConfigFor(t *testing.T, host, user, password string) string {
	t.Helper()
	dir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	b, _ := json.Marshal(map[string]any{"auths": map[string]any{host: map[string]string{"auth": auth}}})
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A Harbor-like registry: TLS with its own CA, token auth on the same
// host:port, a private base image in another repository of the project.
func TestBuildWithHarborStyleTokenAuth(t *testing.T) {
	e := newEnv(t, testregistry.WithTokenAuth("ci", "ci-secret-4711"))
	seedBase(t, e.reg, "team/base:1")
	dest := e.ref("team/app:1")
	r := e.registryBuild(copyContext(t, e.ref("team/base:1")), nil, "-d", dest, "-v", "debug",
		"--docker-config", e.reg.DockerConfigDir, "--registry-certificate", e.reg.Host+"="+e.reg.CAFile)
	wantOutput(t, r, true,
		`Registry "`+e.reg.Host+`": using credentials from docker config "`+filepath.Join(e.reg.DockerConfigDir, "config.json")+`" key "`+e.reg.Host+`"`,
		`Push access to "`+e.ref("team/app")+`" confirmed`)
	if strings.Contains(r.out, "ci-secret-4711") {
		t.Fatalf("the password is in the output:\n%s", r.out)
	}
	if _, err := head(e.reg, "team/app:1"); err != nil {
		t.Fatal(err)
	}
	// The base layer was mounted from team/base, not uploaded again.
	if !slices.Contains(e.reg.TokenScopes(), "repository:team/base:pull") {
		t.Fatalf("no mount scope among %q", e.reg.TokenScopes())
	}
	mounted := false
	for _, req := range e.reg.Requests() {
		mounted = mounted || req.Method == http.MethodPost && strings.Contains(req.Query, "from=team%2Fbase")
	}
	if !mounted {
		t.Fatal("no cross-repository mount was asked for")
	}
}

// A wrong password fails before the build starts.
func TestWrongPasswordFailsBeforeBuild(t *testing.T) {
	e := newEnv(t, testregistry.WithBasicAuth("ci", "ci-secret"))
	seedBase(t, e.reg, "team/base:1")
	cfg := dockerConfigFor(t, e.reg.Host, "ci", "not-the-password")
	dir := copyContext(t, e.ref("team/base:1"))
	dest := e.ref("team/app:1")

	r := e.registryBuild(dir, nil, "-d", dest, "--insecure-registry", e.reg.Host, "--docker-config", cfg)
	wantOutput(t, r, false,
		`checking push access to "`+dest+`": registry "`+e.reg.Host+`" answered 401 Unauthorized for repository "team/app"`,
		`credentials from docker config "`+filepath.Join(cfg, "config.json")+`" key "`+e.reg.Host+`"`,
		"check the user name and password")
	if strings.Contains(r.out, "COPY") || strings.Contains(r.out, "Resolved") {
		t.Fatalf("the build started:\n%s", r.out)
	}

	// Without the check, the same mistake surfaces at the first pull.
	r = e.registryBuild(dir, nil, "-d", dest, "--insecure-registry", e.reg.Host, "--docker-config", cfg, "--skip-push-permission-check")
	wantOutput(t, r, false, `pulling "`+e.ref("team/base:1")+`"`, "401 Unauthorized")
}

func TestLoginRoundTrip(t *testing.T) {
	const robot, secret = "robot$team+ci", "robot-secret-0815"
	e := newEnv(t, testregistry.WithTokenAuth("admin", "admin-secret"), testregistry.WithTokenAccount(robot, secret, "team", "pull", "push"))
	seedBase(t, e.reg, "team/base:1")
	configDir := filepath.Join(t.TempDir(), "docker")
	tlsFlags := []string{"--registry-certificate", e.reg.Host + "=" + e.reg.CAFile, "--docker-config", configDir}

	r := e.kilnIn("wrong\n", append([]string{"login", e.reg.Host, "-u", robot, "--password-stdin"}, tlsFlags...))
	wantOutput(t, r, false, `logging in to "`+e.reg.Host+`": the token service "https://`+e.reg.Host+`/service/token" of registry "`+e.reg.Host+`" answered 401 Unauthorized to user "robot$team+ci": "UNAUTHORIZED: invalid username or password"`,
		"Check the user name and the password as given")
	if strings.Contains(r.out, "kiln login") {
		t.Fatalf("the advice for a failed login is to log in:\n%s", r.out)
	}
	if _, err := os.Stat(filepath.Join(configDir, "config.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed login wrote the config: %v", err)
	}

	r = e.kilnIn(secret+"\n", append([]string{"login", "https://" + e.reg.Host + "/", "-u", robot, "--password-stdin"}, tlsFlags...))
	wantOutput(t, r, true, `Login Succeeded: credentials for "`+e.reg.Host+`" (user "robot$team+ci") stored in docker config "`+filepath.Join(configDir, "config.json")+`"`)
	st, err := os.Stat(filepath.Join(configDir, "config.json"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config.json: %v, mode %v", err, st.Mode())
	}

	dest := e.ref("team/app:1")
	r = e.registryBuild(copyContext(t, e.ref("team/base:1")), nil, append([]string{"-d", dest, "-v", "debug"}, tlsFlags...)...)
	wantOutput(t, r, true, `Push access to "`+e.ref("team/app")+`" confirmed`)
	if strings.Contains(r.out, secret) {
		t.Fatalf("the password is in the output:\n%s", r.out)
	}
	// The robot may not push outside its project.
	r = e.registryBuild(copyContext(t, e.ref("team/base:1")), nil, append([]string{"-d", e.ref("other/app:1")}, tlsFlags...)...)
	wantOutput(t, r, false, `checking push access to "`+e.ref("other/app:1")+`"`, "may not push to \"other/app\"")
}

func TestEnvironmentCredentials(t *testing.T) {
	const password = "env-secret-1234"
	e := newEnv(t, testregistry.WithBasicAuth("ci", password))
	seedBase(t, e.reg, "team/base:1")
	dir := copyContext(t, e.ref("team/base:1"))
	user, pass := registry.CredentialEnvVars(e.reg.Host)
	for _, tc := range []struct {
		name string
		env  []string
		from string
	}{
		{"KILN_REGISTRY", []string{user + "=ci", pass + "=" + password}, "environment variables " + user + " and " + pass},
		{"GitLab", []string{"CI_REGISTRY=" + e.reg.Host, "CI_REGISTRY_USER=ci", "CI_REGISTRY_PASSWORD=" + password}, "GitLab CI variables CI_REGISTRY_USER and CI_REGISTRY_PASSWORD"},
		{"DOCKER_AUTH_CONFIG", []string{`DOCKER_AUTH_CONFIG={"auths":{"` + e.reg.Host + `":{"auth":"` + base64.StdEncoding.EncodeToString([]byte("ci:"+password)) + `"}}}`},
			`environment variable DOCKER_AUTH_CONFIG key "` + e.reg.Host + `"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.registryBuild(dir, tc.env, "-d", e.ref("team/app:"+strings.ToLower(tc.name[:3])), "--insecure-registry", e.reg.Host, "-v", "debug")
			wantOutput(t, r, true, `Registry "`+e.reg.Host+`": using credentials from `+tc.from)
			if strings.Contains(r.out, password) {
				t.Fatalf("the password is in the output:\n%s", r.out)
			}
		})
	}
}

// Docker Hub images come from a mirror with a path (a Harbor proxy-cache
// project): Docker Hub itself is never reached.
func TestRegistryMirrors(t *testing.T) {
	e := newEnv(t)
	mirror := testregistry.Start(t)
	seedBase(t, mirror, "dockerhub-proxy/library/kiln-mirror-test:1")
	seedBase(t, e.reg, "team/base:1")
	r := e.registryBuild(copyContext(t, "kiln-mirror-test:1"), nil, "-d", e.ref("team/app:1"),
		"--insecure-registry", e.reg.Host, "--insecure-registry", mirror.Host,
		"--registry-mirror", mirror.Ref("dockerhub-proxy"))
	wantOutput(t, r, true, `Resolved "`+mirror.Ref("dockerhub-proxy/library/kiln-mirror-test:1")+`"`)

	// A map for another registry; the first mirror lacks the image, the
	// origin serves it.
	empty := testregistry.Start(t)
	r = e.registryBuild(copyContext(t, e.ref("team/base:1")), nil, "-d", e.ref("team/app:2"),
		"--insecure-registry", e.reg.Host, "--insecure-registry", empty.Host, "--registry-map", e.reg.Host+"="+empty.Ref("cache"))
	wantOutput(t, r, true, `Mirror could not serve "`+e.ref("team/base:1")+`"`, `Resolved "`+e.ref("team/base:1")+`"`)

	r = e.registryBuild(copyContext(t, e.ref("team/base:1")), nil, "-d", e.ref("team/app:3"),
		"--insecure-registry", e.reg.Host, "--insecure-registry", empty.Host, "--registry-map", e.reg.Host+"="+empty.Ref("cache"),
		"--skip-default-registry-fallback")
	wantOutput(t, r, false, "no mirror could serve it, and --skip-default-registry-fallback forbids pulling from")
}

// Builds through a proxy that resets connections, answers 500 and 429,
// trickles and truncates bodies, still succeed.
func TestBuildThroughFaults(t *testing.T) {
	e := newEnv(t)
	seedBase(t, e.reg, "team/base:1")
	proxy := faultproxy.Start(t, []string{"http://" + e.reg.Host},
		faultproxy.WithRule(faultproxy.Rule{Method: http.MethodGet, PathContains: "/manifests/", Fault: faultproxy.Status, Status: http.StatusInternalServerError, Times: 1}),
		faultproxy.WithRule(faultproxy.Rule{Method: http.MethodGet, PathContains: "/blobs/", Fault: faultproxy.Truncate, Times: 1}),
		faultproxy.WithRule(faultproxy.Rule{Method: http.MethodGet, PathContains: "/blobs/", Fault: faultproxy.Slow}),
		faultproxy.WithRule(faultproxy.Rule{Method: http.MethodHead, PathContains: "/blobs/", Fault: faultproxy.Status, Status: http.StatusTooManyRequests, Times: 1}),
		faultproxy.WithRule(faultproxy.Rule{Method: http.MethodPatch, Fault: faultproxy.Reset, Times: 1}),
		faultproxy.WithRule(faultproxy.Rule{Method: http.MethodPut, PathContains: "/manifests/", Fault: faultproxy.Status, Status: http.StatusServiceUnavailable, Times: 1}))
	r := e.registryBuild(copyContext(t, proxy.Ref("team/base:1")), nil, "-d", proxy.Ref("team/app:1"), "--insecure-registry", proxy.Host)
	wantOutput(t, r, true, "Registry request failed, retrying")
	if _, err := head(e.reg, "team/app:1"); err != nil {
		t.Fatalf("team/app:1 after the build: %v", err)
	}
	if n := len(proxy.Injected()); n < 6 {
		t.Fatalf("only %d faults injected: %q", n, proxy.Injected())
	}

	// A registry that keeps failing uploads: a clean error, and no tag.
	broken := faultproxy.Start(t, []string{"http://" + e.reg.Host},
		faultproxy.WithRule(faultproxy.Rule{Method: http.MethodPatch, Fault: faultproxy.Reset}))
	r = e.registryBuild(copyContext(t, broken.Ref("team/base:1")), nil, "-d", broken.Ref("team/broken:1"),
		"--insecure-registry", broken.Host, "--push-retry", "1")
	wantOutput(t, r, false, `pushing "`+broken.Ref("team/broken:1")+`": the connection to registry "`+broken.Host+`"`, "on every retry")
	var terr *transport.Error
	if _, err := head(e.reg, "team/broken:1"); !errors.As(err, &terr) || terr.StatusCode != http.StatusNotFound {
		t.Fatalf("team/broken:1 after a failed push: %v, want 404", err)
	}
}

// Each failure a user meets says what went wrong and what fixes it.
func TestRegistryErrorMessages(t *testing.T) {
	e := newEnv(t)
	seedBase(t, e.reg, "team/base:1")
	dir := copyContext(t, e.ref("team/base:1"))
	plainPull := []string{"--insecure-registry", e.reg.Host}

	t.Run("unknown CA", func(t *testing.T) {
		reg := testregistry.Start(t, testregistry.WithTLS())
		r := e.registryBuild(dir, nil, append(plainPull, "-d", reg.Ref("team/app:1"))...)
		wantOutput(t, r, false, `the TLS certificate of registry "`+reg.Host+`" is signed by an unknown authority`,
			"--registry-certificate "+reg.Host+"=ca.pem")
	})
	t.Run("plain HTTP on loopback", func(t *testing.T) {
		// Allowed without --insecure-registry, as Docker and kaniko do;
		// elsewhere it needs the flag (pkg/registry's tests: the test
		// registries listen on 127.0.0.1 only).
		r := e.registryBuild(dir, nil, "-d", e.ref("team/app:1"))
		wantOutput(t, r, true, `Registry "`+e.reg.Host+`" answers over plain HTTP: allowed without --insecure-registry because it is on this machine (loopback)`)
	})
	t.Run("client certificate", func(t *testing.T) {
		reg := testregistry.Start(t, testregistry.WithClientCertAuth())
		ca := "--registry-certificate=" + reg.Host + "=" + reg.CAFile
		r := e.registryBuild(dir, nil, append(plainPull, "-d", reg.Ref("team/app:1"), ca)...)
		wantOutput(t, r, false, "requires a client certificate", "--registry-client-cert "+reg.Host+"=client.pem,client-key.pem")
		r = e.registryBuild(dir, nil, append(plainPull, "-d", reg.Ref("team/app:1"), ca,
			"--registry-client-cert", reg.Host+"="+reg.ClientCertFile+","+reg.ClientKeyFile)...)
		wantOutput(t, r, true)
	})
	t.Run("no credentials", func(t *testing.T) {
		reg := testregistry.Start(t, testregistry.WithBasicAuth("ci", "ci-secret"))
		r := e.registryBuild(dir, nil, append(plainPull, "-d", reg.Ref("team/app:1"), "--insecure-registry", reg.Host)...)
		wantOutput(t, r, false, "401 Unauthorized", "no credentials (searched", "`kiln login "+reg.Host+"`")
	})
	t.Run("denied", func(t *testing.T) {
		reg := testregistry.Start(t, testregistry.WithTokenAuth("admin", "admin-secret"),
			testregistry.WithTokenAccount("reader", "reader-secret", "team", "pull"), testregistry.WithForbiddenDenials())
		cfg := dockerConfigFor(t, reg.Host, "reader", "reader-secret")
		r := e.registryBuild(dir, nil, append(plainPull, "-d", reg.Ref("team/app:1"), "--docker-config", cfg,
			"--registry-certificate", reg.Host+"="+reg.CAFile)...)
		wantOutput(t, r, false, "403 Forbidden", `may not push to repository "team/app"`, `organization "team"`)
	})
	t.Run("project missing", func(t *testing.T) {
		reg := testregistry.Start(t, testregistry.WithProjects("team"))
		r := e.registryBuild(dir, nil, append(plainPull, "-d", reg.Ref("teams/app:1"), "--insecure-registry", reg.Host)...)
		wantOutput(t, r, false, `404 Not Found for repository "teams/app"`, `Create the Harbor project or SWR organization "teams"`)
	})
	t.Run("load balancer without shared storage", func(t *testing.T) {
		a, b := testregistry.Start(t), testregistry.Start(t)
		lb := faultproxy.Start(t, []string{"http://" + a.Host, "http://" + b.Host}, faultproxy.WithRoute(func(r *http.Request) int {
			if strings.Contains(r.URL.Path, "/blobs/uploads/") && r.Method != http.MethodPost {
				return 1
			}
			return 0
		}))
		r := e.registryBuild(dir, nil, append(plainPull, "-d", lb.Ref("team/app:1"), "--insecure-registry", lb.Host)...)
		wantOutput(t, r, false, "BLOB_UPLOAD_UNKNOWN", "storage shared by every instance")
	})
	t.Run("immutable tag", func(t *testing.T) {
		reg := testregistry.Start(t, testregistry.WithImmutableTags())
		flags := append(plainPull, "-d", reg.Ref("team/app:1"), "--insecure-registry", reg.Host)
		wantOutput(t, e.registryBuild(dir, nil, flags...), true)
		changed := writeFiles(t, map[string]string{"Dockerfile": "FROM " + e.ref("team/base:1") + "\nCOPY hello /hello\n", "hello": "changed\n"})
		r := e.registryBuild(changed, nil, flags...)
		wantOutput(t, r, false, "412 Precondition Failed: the tag is immutable", "configured as immutable", "--push-ignore-immutable-tag-errors")
		r = e.registryBuild(changed, nil, append(flags, "--push-ignore-immutable-tag-errors")...)
		wantOutput(t, r, true, `Tag "`+reg.Ref("team/app:1")+`" is immutable in the registry and was left alone`)
	})
	t.Run("bad flags", func(t *testing.T) {
		r := e.registryBuild(dir, nil, "-d", e.ref("team/app:1"), "--registry-client-cert", "host=cert-only")
		wantOutput(t, r, false, `invalid --registry-client-cert "host=cert-only"`)
		// A --docker-config that names nothing is said, and the build, which
		// needs no credentials, goes on.
		r = e.registryBuild(dir, nil, "-d", e.ref("team/app:1"), "--docker-config", "/nonexistent/docker")
		wantOutput(t, r, true, `docker config "/nonexistent/docker/config.json" (from --docker-config "/nonexistent/docker"): no such directory "/nonexistent/docker"; searching the other places for credentials`)
		r = e.registryBuild(dir, nil, "-d", e.ref("team/app:1"), "--registry-map", "no-equals-sign")
		wantOutput(t, r, false, `invalid --registry-map "no-equals-sign"`)
	})
}
