package buildcontext

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/sirupsen/logrus"
)

func TestParseGitSource(t *testing.T) {
	sha := strings.Repeat("ab", 20)
	for _, tc := range []struct {
		scheme, rest string
		g            GitOptions
		url          string
		ref, commit  string
	}{
		{"git", "github.com/org/repo.git", GitOptions{}, "https://github.com/org/repo.git", "", ""},
		{"git", "github.com/org/repo.git", GitOptions{PlainHTTP: true}, "http://github.com/org/repo.git", "", ""},
		{"git", "github.com/org/repo.git#refs/heads/x#" + sha, GitOptions{}, "https://github.com/org/repo.git", "refs/heads/x", sha},
		{"git", "TOKEN@github.com/org/repo.git#main", GitOptions{}, "https://github.com/org/repo.git", "main", ""},
		{"https", "u:p@host:8443/a/repo.git#refs/pull/1/head", GitOptions{}, "https://host:8443/a/repo.git", "refs/pull/1/head", ""},
		{"http", "host/repo.git/", GitOptions{PlainHTTP: true}, "http://host/repo.git/", "", ""},
		// kaniko takes a hash as the first fragment for the commit.
		{"https", "host/repo.git#" + sha, GitOptions{}, "https://host/repo.git", "", sha},
		{"https", "host/repo.git##" + sha, GitOptions{}, "https://host/repo.git", "", sha},
	} {
		src, err := parseGitSource(tc.scheme, tc.rest, tc.g)
		if err != nil {
			t.Errorf("%s://%s: %v", tc.scheme, tc.rest, err)
			continue
		}
		if src.url != tc.url || src.ref != tc.ref || src.commit != tc.commit {
			t.Errorf("%s://%s = %q %q %q, want %q %q %q", tc.scheme, tc.rest, src.url, src.ref, src.commit, tc.url, tc.ref, tc.commit)
		}
	}

	for _, tc := range []struct{ scheme, rest, want string }{
		{"git", "host/repo.git#a#b#c", `too many fragments in "#a#b#c"`},
		{"git", "host/repo.git#main#abc1234", `commit "abc1234" is not a full 40-character commit hash`},
		{"git", "host", `git repository URL "https://host" has no host or no path`},
		{"https", "host/repo.git?branch=main", `a query is not supported`},
		{"https", "user:secret@host:port/repo.git", "invalid git repository URL"},
		{"https", "user:secret@host/repo.git?x", `git repository URL "https://host/repo.git?x": a query`},
	} {
		_, err := parseGitSource(tc.scheme, tc.rest, GitOptions{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s://%s: error %v, want %q", tc.scheme, tc.rest, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%s://%s: the error shows the password: %v", tc.scheme, tc.rest, err)
		}
	}
}

func TestIsGitURL(t *testing.T) {
	for rest, want := range map[string]bool{
		"host/repo.git":         true,
		"host/repo.git/":        true,
		"host/repo.git#main":    true,
		"host/repo.git?x=1":     true,
		"host/ctx.tar.gz":       false,
		"host/org/repo":         false,
		"host/x.git.tar.gz":     false,
		"host/ctx.tar.gz#x.git": false,
	} {
		if got := isGitURL(rest); got != want {
			t.Errorf("isGitURL(%q) = %v, want %v", rest, got, want)
		}
	}
}

func TestGitCredentials(t *testing.T) {
	inURL := url.UserPassword("url-user", "url-pass")
	for _, tc := range []struct {
		name  string
		g     GitOptions
		inURL *url.Userinfo
		want  *githttp.BasicAuth
	}{
		{"none", GitOptions{}, nil, nil},
		{"URL", GitOptions{}, inURL, &githttp.BasicAuth{Username: "url-user", Password: "url-pass"}},
		{"password", GitOptions{Username: "u", Password: "p"}, inURL, &githttp.BasicAuth{Username: "u", Password: "p"}},
		{"token", GitOptions{Token: "t", Password: "p"}, inURL, &githttp.BasicAuth{Username: "t"}},
		{"user and token", GitOptions{Username: "u", Password: "p", Token: "t"}, nil, &githttp.BasicAuth{Username: "u", Password: "t"}},
	} {
		got := credentials(tc.g, tc.inURL)
		if (got == nil) != (tc.want == nil) || got != nil && *got != *tc.want {
			t.Errorf("%s: credentials = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// checkout describes what a git context should hold.
type checkout struct {
	version string // version.txt
	commit  string // HEAD
	branch  string // the branch HEAD is on, "" when detached
	shallow bool   // only part of the history was fetched
}

func TestGitRefs(t *testing.T) {
	f := newGitFixture(t)
	srv := startGitServer(t, f.root, gitServerConfig{})
	host := strings.TrimPrefix(srv, "http://")
	pull := runGit(t, f.root, "--git-dir", "repo.git", "rev-parse", "refs/pull/1/head")
	feature := runGit(t, f.root, "--git-dir", "repo.git", "rev-parse", "refs/heads/feature")
	for _, tc := range []struct {
		spec string
		want checkout
	}{
		{"git://" + host + "/repo.git", checkout{"3", f.c3, "main", true}},
		{srv + "/repo.git", checkout{"3", f.c3, "main", true}},
		{srv + "/repo.git#refs/heads/feature", checkout{"feature", feature, "feature", true}},
		{srv + "/repo.git#feature", checkout{"feature", feature, "feature", true}},
		{srv + "/repo.git#refs/tags/v2", checkout{"2", f.c2, "", true}},
		{srv + "/repo.git#v2", checkout{"2", f.c2, "", true}},
		{srv + "/repo.git#light", checkout{"3", f.c3, "", true}},
		{srv + "/repo.git#refs/pull/1/head", checkout{"pull", pull, "", true}},
		{srv + "/repo.git#refs/heads/main#" + f.c3, checkout{"3", f.c3, "main", true}},
		// Commits behind the tip, from a server that does not serve
		// commits by hash: the whole history is fetched.
		{srv + "/repo.git#refs/heads/main#" + f.c1, checkout{"1", f.c1, "", false}},
		{srv + "/repo.git#" + f.c2, checkout{"2", f.c2, "", false}},
		{"git://" + host + "/repo.git#v2#" + f.c1, checkout{"1", f.c1, "", false}},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			c, _ := openGit(t, tc.spec, GitOptions{PlainHTTP: true})
			wantCheckout(t, c.Dir(), tc.want)
			if _, err := os.Stat(filepath.Join(c.Dir(), "lib", "lib.txt")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the submodule was checked out without RecurseSubmodules: %v", err)
			}
		})
	}
}

func TestGitCommitByHash(t *testing.T) {
	f := newGitFixture(t)
	srv := startGitServer(t, f.root, gitServerConfig{byHash: true})
	c, log := openGit(t, srv+"/repo.git#refs/heads/main#"+f.c1, GitOptions{})
	// Fetched by its hash, the commit comes alone, not with the history.
	wantCheckout(t, c.Dir(), checkout{"1", f.c1, "", true})
	if strings.Contains(log.String(), "whole history") {
		t.Errorf("the whole history was fetched:\n%s", log)
	}
	if n := strings.Count(runGit(t, c.Dir(), "log", "--format=%H"), "\n") + 1; n != 1 {
		t.Errorf("the clone has %d commits, want 1", n)
	}
}

func TestGitOptions(t *testing.T) {
	f := newGitFixture(t)
	srv := startGitServer(t, f.root, gitServerConfig{})
	feature := runGit(t, f.root, "--git-dir", "repo.git", "rev-parse", "refs/heads/feature")

	c, _ := openGit(t, srv+"/repo.git", GitOptions{Branch: "feature"})
	wantCheckout(t, c.Dir(), checkout{"feature", feature, "feature", true})
	c, _ = openGit(t, srv+"/repo.git#v2", GitOptions{Branch: "refs/tags/v2"})
	wantCheckout(t, c.Dir(), checkout{"2", f.c2, "", true})

	// Only the ref checked out is fetched, unless AllBranches.
	c, _ = openGit(t, srv+"/repo.git", GitOptions{})
	if refs := runGit(t, c.Dir(), "for-each-ref", "--format=%(refname)", "refs/remotes"); refs != "refs/remotes/origin/main" {
		t.Errorf("remote-tracking refs %q, want only main's", refs)
	}
	c, _ = openGit(t, srv+"/repo.git", GitOptions{AllBranches: true})
	wantCheckout(t, c.Dir(), checkout{"3", f.c3, "main", true})
	if refs := runGit(t, c.Dir(), "for-each-ref", "--format=%(refname)", "refs/remotes"); refs != "refs/remotes/origin/feature\nrefs/remotes/origin/main" {
		t.Errorf("remote-tracking refs %q, want feature's and main's", refs)
	}

	// Depth: some history, or all of it.
	c, _ = openGit(t, srv+"/repo.git", GitOptions{Depth: 2})
	wantCheckout(t, c.Dir(), checkout{"3", f.c3, "main", true})
	if got, want := runGit(t, c.Dir(), "log", "--format=%H"), f.c3+"\n"+f.c2; got != want {
		t.Errorf("depth 2 fetched\n%s\nwant\n%s", got, want)
	}
	c, _ = openGit(t, srv+"/repo.git", GitOptions{Depth: -1})
	wantCheckout(t, c.Dir(), checkout{"3", f.c3, "main", false})
	if got, want := runGit(t, c.Dir(), "log", "--format=%H"), f.c3+"\n"+f.c2+"\n"+f.c1; got != want {
		t.Errorf("the whole history is\n%s\nwant\n%s", got, want)
	}
}

func TestGitSubmodules(t *testing.T) {
	f := newGitFixture(t)
	for _, byHash := range []bool{false, true} {
		srv := startGitServer(t, f.root, gitServerConfig{byHash: byHash})
		c, _ := openGit(t, srv+"/repo.git", GitOptions{RecurseSubmodules: true})
		wantCheckout(t, c.Dir(), checkout{"3", f.c3, "main", true})
		lib := filepath.Join(c.Dir(), "lib")
		// The commit recorded, which is not the tip of lib's branch.
		if b, err := os.ReadFile(filepath.Join(lib, "lib.txt")); err != nil || string(b) != "lib v1" {
			t.Errorf("byHash %v: lib/lib.txt = %q, %v; want \"lib v1\"", byHash, b, err)
		}
		if head := runGit(t, lib, "rev-parse", "HEAD"); head != f.l1 {
			t.Errorf("byHash %v: the submodule is at %s, want %s", byHash, head, f.l1)
		}
	}
}

func TestGitSubmoduleURLs(t *testing.T) {
	for _, raw := range []string{"../lib.git", "./lib.git", "https://host/lib.git", "http://host/lib.git", "git://host/lib.git"} {
		if err := checkSubmoduleURL(raw); err != nil {
			t.Errorf("checkSubmoduleURL(%q): %v", raw, err)
		}
	}
	for _, raw := range []string{"/srv/git/lib.git", "file:///srv/git/lib.git", "git@host:org/lib.git", "ssh://host/lib.git", "lib"} {
		if err := checkSubmoduleURL(raw); err == nil || !strings.Contains(err.Error(), "only http, https and git URLs") {
			t.Errorf("checkSubmoduleURL(%q) = %v, want a refusal", raw, err)
		}
	}
}

func TestGitCredentialsStayOnTheirServer(t *testing.T) {
	auth := &githttp.BasicAuth{Username: "u", Password: "p"}
	origin, err := url.Parse("https://git.example.com:8443/org/repo.git")
	if err != nil {
		t.Fatal(err)
	}
	cl := &cloner{origin: origin, auth: auth}
	for raw, want := range map[string]*githttp.BasicAuth{
		"https://git.example.com:8443/org/lib.git": auth,
		"https://GIT.example.com:8443/other.git":   auth,
		"http://git.example.com:8443/org/lib.git":  nil,
		"https://git.example.com/org/lib.git":      nil,
		"https://elsewhere.example.com:8443/x.git": nil,
		"git://git.example.com:8443/org/lib.git":   nil,
	} {
		if got := cl.authFor(raw); got != want {
			t.Errorf("authFor(%q) = %v, want %v", raw, got, want)
		}
	}
}

func TestGitSubPathAndClose(t *testing.T) {
	f := newGitFixture(t)
	srv := startGitServer(t, f.root, gitServerConfig{})
	work := t.TempDir()
	c, err := Open(context.Background(), srv+"/repo.git", WithWorkDir(work), WithSubPath("app"), WithLogger(discardLogger()))
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(c.Dir()) != "app" {
		t.Errorf("Dir() = %q, want the app sub-directory", c.Dir())
	}
	if err := c.LoadIgnore(""); err != nil {
		t.Fatal(err)
	}
	wantListing(t, c.FS(), "/.dockerignore", "/Dockerfile")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(work); len(entries) != 0 {
		t.Errorf("Close left %v in the work directory", entries)
	}
}

func TestGitErrors(t *testing.T) {
	f := newGitFixture(t)
	srv := startGitServer(t, f.root, gitServerConfig{})
	missing := strings.Repeat("0a", 20)
	for _, tc := range []struct {
		spec string
		g    GitOptions
		want []string
	}{
		{srv + "/repo.git#nope", GitOptions{}, []string{
			`git repository "` + srv + `/repo.git" ref "nope": `,
			`ref "nope" not found: neither "refs/heads/nope" nor "refs/tags/nope" exists`,
		}},
		{srv + "/repo.git#refs/heads/nope", GitOptions{}, []string{`ref "refs/heads/nope" not found`}},
		{srv + "/repo.git#refs/heads/main#" + missing, GitOptions{}, []string{
			`git repository "` + srv + `/repo.git" ref "refs/heads/main" commit "` + missing + `": `,
			"commit " + missing + " is not in the fetched history",
		}},
		{srv + "/missing.git", GitOptions{}, []string{`git repository "` + srv + `/missing.git": listing refs: repository not found: check the URL`}},
		{srv + "/repo.git", GitOptions{Branch: "nope"}, []string{`branch option: ref "nope" not found`}},
		{srv + "/repo.git#v2", GitOptions{Branch: "main"}, []string{`the URL names ref "refs/tags/v2" but the branch option "refs/heads/main"`}},
	} {
		_, err := Open(context.Background(), tc.spec, WithWorkDir(t.TempDir()), WithGit(tc.g), WithLogger(discardLogger()))
		if err == nil {
			t.Errorf("%s: opened", tc.spec)
			continue
		}
		for _, w := range append(tc.want, `build context "`+tc.spec+`": `) {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error\n  %v\nwant it to contain\n  %s", tc.spec, err, w)
			}
		}
	}
}

func TestGitTLSAndCredentials(t *testing.T) {
	f := newGitFixture(t)
	const user, password, token = "builder", "pass-1234-secret", "tok-5678-secret"
	srv := startGitServer(t, f.root, gitServerConfig{tls: true, auth: func(u, p string) bool {
		return u == user && (p == password || p == token) || u == token && p == ""
	}})
	host := strings.TrimPrefix(srv, "https://")

	var logs bytes.Buffer
	log := logrus.New()
	log.SetOutput(&logs)
	log.SetLevel(logrus.TraceLevel)
	open := func(spec string, g GitOptions) error {
		c, err := Open(context.Background(), spec, WithWorkDir(t.TempDir()), WithGit(g), WithLogger(log))
		if err == nil {
			wantCheckout(t, c.Dir(), checkout{"3", f.c3, "main", true})
			if b, err := os.ReadFile(filepath.Join(c.Dir(), "lib", "lib.txt")); g.RecurseSubmodules && string(b) != "lib v1" {
				t.Errorf("%s: lib/lib.txt = %q, %v", spec, b, err)
			}
		}
		return err
	}
	for _, tc := range []struct {
		name string
		spec string
		g    GitOptions
	}{
		// The submodule, on the same server, gets the credentials too.
		{"password", srv + "/repo.git", GitOptions{InsecureSkipTLS: true, Username: user, Password: password, RecurseSubmodules: true}},
		{"token", srv + "/repo.git", GitOptions{InsecureSkipTLS: true, Token: token}},
		{"user and token", srv + "/repo.git", GitOptions{InsecureSkipTLS: true, Username: user, Token: token}},
		{"URL", "https://" + user + ":" + password + "@" + host + "/repo.git", GitOptions{InsecureSkipTLS: true}},
		{"token in a git:// URL", "git://" + token + "@" + host + "/repo.git", GitOptions{InsecureSkipTLS: true}},
	} {
		if err := open(tc.spec, tc.g); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	for _, tc := range []struct {
		name, spec string
		g          GitOptions
		want       string
	}{
		{"self-signed", srv + "/repo.git", GitOptions{Token: token}, "certificate signed by unknown authority: trust the server's CA (SSL_CERT_FILE), or accept its certificate with the insecure-skip-tls option"},
		{"no credentials", srv + "/repo.git", GitOptions{InsecureSkipTLS: true}, "authentication required: unauthorized: set GIT_USERNAME and GIT_PASSWORD, or GIT_TOKEN"},
		{"wrong password", srv + "/repo.git", GitOptions{InsecureSkipTLS: true, Username: user, Password: password + "x"}, "check the credentials"},
		{"wrong URL password", "https://" + user + ":" + token + "x@" + host + "/repo.git", GitOptions{InsecureSkipTLS: true}, `build context "https://` + host + `/repo.git"`},
	} {
		err := open(tc.spec, tc.g)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: the error shows a credential: %v", tc.name, err)
		}
	}
	if logs.Len() == 0 || strings.Contains(logs.String(), "secret") {
		t.Errorf("the log is empty or shows a credential:\n%s", logs.String())
	}
}

// openGit opens a git context in a new work directory, returning what it
// logged too.
func openGit(t *testing.T, spec string, g GitOptions) (*Context, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	log := logrus.New()
	log.SetOutput(&buf)
	log.SetLevel(logrus.DebugLevel)
	c, err := Open(context.Background(), spec, WithWorkDir(t.TempDir()), WithGit(g), WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, &buf
}

// wantCheckout checks the checkout in dir with the git command: its
// content, HEAD, that nothing differs from the commit and whether the
// history is complete.
func wantCheckout(t *testing.T, dir string, want checkout) {
	t.Helper()
	if b, err := os.ReadFile(filepath.Join(dir, "version.txt")); err != nil || string(b) != want.version {
		t.Errorf("version.txt = %q, %v; want %q", b, err, want.version)
	}
	if head := runGit(t, dir, "rev-parse", "HEAD"); head != want.commit {
		t.Errorf("HEAD is %s, want %s", head, want.commit)
	}
	branch, _ := exec.Command("git", "-C", dir, "symbolic-ref", "-q", "--short", "HEAD").Output()
	if got := strings.TrimSpace(string(branch)); got != want.branch {
		t.Errorf("HEAD is on branch %q, want %q", got, want.branch)
	}
	if status := runGit(t, dir, "status", "--porcelain", "--ignore-submodules=all"); status != "" {
		t.Errorf("the worktree differs from HEAD:\n%s", status)
	}
	if shallow := runGit(t, dir, "rev-parse", "--is-shallow-repository"); shallow != map[bool]string{true: "true", false: "false"}[want.shallow] {
		t.Errorf("shallow: %s, want %v", shallow, want.shallow)
	}
}

func discardLogger() *logrus.Logger {
	log := logrus.New()
	log.SetOutput(io.Discard)
	return log
}
