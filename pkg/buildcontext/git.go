package buildcontext

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
)

// GitOptions configure how git contexts are fetched. They mirror kaniko's
// --git flag and GIT_* environment variables; the zero value fetches the
// default branch, shallow, without submodules.
//
// A git context is cloned with go-git, in process (the executor image has no
// git binary), into the work directory. The .git directory is kept, as
// kaniko keeps it: a .dockerignore can exclude it.
type GitOptions struct {
	// Branch is the branch or tag to check out when the URL names no ref
	// (--git branch=NAME). Like a ref in the URL, it may be a short name,
	// looked up as refs/heads/NAME and then refs/tags/NAME. When the URL
	// names a ref too, both must name the same one.
	Branch string
	// AllBranches fetches every branch besides the one checked out
	// (--git single-branch=false). By default only that ref is fetched, as
	// git clone --depth does: a build needs one tree.
	AllBranches bool
	// Depth is how many commits of history are fetched from each tip:
	// 0 means 1, the tip alone; a negative depth fetches the whole history.
	// A commit that is not a tip is fetched by its hash when the server
	// allows it, else from the whole history of the ref.
	Depth int
	// RecurseSubmodules checks out the submodules too, recursively
	// (--git recurse-submodules=true), each fetched as shallow as the
	// server allows.
	RecurseSubmodules bool
	// InsecureSkipTLS accepts any certificate from the git servers
	// (--git insecure-skip-tls=true): for self-signed servers only.
	InsecureSkipTLS bool
	// PlainHTTP fetches git:// contexts over http instead of https
	// (kaniko's GIT_PULL_METHOD=http). https:// and http:// URLs say
	// themselves how they are reached.
	PlainHTTP bool
	// Username, Password and Token are the credentials sent to the server
	// of the context, with HTTP basic authentication (GIT_USERNAME,
	// GIT_PASSWORD, GIT_TOKEN). As in kaniko, a Token alone is sent as the
	// user name with an empty password (GitHub's form). With a Username,
	// which kaniko would ignore, the Token is sent as its password (the
	// form GitLab, Bitbucket and Azure DevOps need). A Token takes the
	// place of the Password. Without any of them, the credentials in the
	// URL (git://TOKEN@host/...) are used. Submodules on other servers
	// (another scheme, host or port) never get them.
	Username, Password, Token string
}

// depth is the depth go-git fetches with: 0 is the whole history there.
func (g GitOptions) depth() int {
	switch {
	case g.Depth == 0:
		return 1
	case g.Depth < 0:
		return 0
	}
	return g.Depth
}

// gitSource is a git context: a repository, and what to check out of it.
type gitSource struct {
	// url is the repository's URL, without credentials.
	url string
	// auth is the basic authentication to send, nil for none.
	auth *githttp.BasicAuth
	// ref is the ref as given: a full ref name (refs/heads/main,
	// refs/pull/1/head), a short branch or tag name, or "" for the default
	// branch.
	ref string
	// commit is the full hash of the commit to check out, "" for the tip
	// of the ref.
	commit string
}

// String names the source in messages, without credentials.
func (s *gitSource) String() string {
	out := fmt.Sprintf("git repository %q", s.url)
	if s.ref != "" {
		out += fmt.Sprintf(" ref %q", s.ref)
	}
	if s.commit != "" {
		out += fmt.Sprintf(" commit %q", s.commit)
	}
	return out
}

// isGitURL tells whether an http(s) context (rest is what follows the
// scheme) is a git repository rather than an archive: its path ends in
// ".git", the convention every git host accepts and the one kaniko's git
// contexts use. Anything else is downloaded as an archive.
func isGitURL(rest string) bool {
	p, _, _ := strings.Cut(rest, "#")
	p, _, _ = strings.Cut(p, "?")
	p = strings.TrimSuffix(p, "/")
	return strings.HasSuffix(p, ".git")
}

// parseGitSource parses a git context, kaniko's syntax:
//
//	git://HOST/PATH[#REF[#COMMIT]]
//	https://HOST/PATH.git[#REF[#COMMIT]]   (and http://)
//
// where REF is a ref (refs/heads/BRANCH, refs/tags/TAG, refs/pull/N/head, a
// short branch or tag name) or, as kaniko allows, directly a commit hash,
// and COMMIT the full hash of the commit to check out. git:// names the
// repository, not the protocol: as in kaniko it is fetched over https (or
// http with PlainHTTP). rest is what follows "scheme://".
func parseGitSource(scheme, rest string, g GitOptions) (*gitSource, error) {
	loc, fragment, _ := strings.Cut(rest, "#")
	var ref, commit string
	if fragment != "" {
		parts := strings.Split(fragment, "#")
		if len(parts) > 2 {
			return nil, fmt.Errorf("too many fragments in %q: use #REF or #REF#COMMIT", "#"+fragment)
		}
		ref = parts[0]
		if len(parts) == 2 {
			commit = parts[1]
		}
	}
	if commit == "" && plumbing.IsHash(ref) {
		ref, commit = "", ref
	}
	if commit != "" && !plumbing.IsHash(commit) {
		return nil, fmt.Errorf("commit %q is not a full 40-character commit hash", commit)
	}
	if scheme == "git" {
		scheme = "https"
		if g.PlainHTTP {
			scheme = "http"
		}
	}
	u, err := url.Parse(scheme + "://" + loc)
	if err != nil {
		// url's errors quote the URL, credentials included.
		return nil, errors.New("invalid git repository URL")
	}
	if u.Host == "" || strings.Trim(u.Path, "/") == "" {
		return nil, fmt.Errorf("git repository URL %q has no host or no path", redactSpec(scheme+"://"+loc))
	}
	if u.RawQuery != "" {
		return nil, fmt.Errorf("git repository URL %q: a query is not supported; select the ref with #REF[#COMMIT]", redactSpec(scheme+"://"+loc))
	}
	src := &gitSource{ref: ref, commit: commit, auth: credentials(g, u.User)}
	u.User = nil
	src.url = u.String()
	return src, nil
}

// credentials returns the basic authentication for the repository, from
// the options or else from the URL's user information (see GitOptions).
func credentials(g GitOptions, inURL *url.Userinfo) *githttp.BasicAuth {
	switch {
	case g.Token != "" && g.Username != "":
		return &githttp.BasicAuth{Username: g.Username, Password: g.Token}
	case g.Token != "":
		return &githttp.BasicAuth{Username: g.Token}
	case g.Username != "" || g.Password != "":
		return &githttp.BasicAuth{Username: g.Username, Password: g.Password}
	case inURL != nil:
		password, _ := inURL.Password()
		return &githttp.BasicAuth{Username: inURL.Username(), Password: password}
	}
	return nil
}

// explainGitError adds what to do to the errors whose fix is known.
func explainGitError(err error, auth *githttp.BasicAuth) error {
	var hint string
	var certErr *tls.CertificateVerificationError
	switch {
	case errors.As(err, &certErr):
		hint = "trust the server's CA (SSL_CERT_FILE), or accept its certificate with the insecure-skip-tls option"
	case errors.Is(err, transport.ErrAuthenticationRequired) && auth == nil:
		hint = "set GIT_USERNAME and GIT_PASSWORD, or GIT_TOKEN"
	case errors.Is(err, transport.ErrAuthenticationRequired), errors.Is(err, transport.ErrAuthorizationFailed):
		hint = "check the credentials (GIT_USERNAME, GIT_PASSWORD, GIT_TOKEN or the URL's)"
	case errors.Is(err, transport.ErrRepositoryNotFound):
		hint = "check the URL (and the credentials: servers may hide private repositories)"
	default:
		return err
	}
	return &hintError{err: err, hint: hint}
}

// hintError is an error followed by what to do about it.
type hintError struct {
	err  error
	hint string
}

// Error trims what go-git's errors end with: the server's message and its
// newline, or a colon when the server said nothing.
func (e *hintError) Error() string {
	return strings.TrimRight(e.err.Error(), ": \n") + ": " + e.hint
}

func (e *hintError) Unwrap() error { return e.err }
