package buildcontext

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/index"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/sirupsen/logrus"
)

const (
	// maxSubmoduleLevels bounds submodule recursion, as go-git's default
	// recursion depth (which kaniko uses) does.
	maxSubmoduleLevels = 10

	// commitRef holds a commit fetched by its hash until it is checked
	// out: go-git fetches into a ref.
	commitRef = "refs/kiln/commit"

	allBranches = config.RefSpec("+refs/heads/*:refs/remotes/origin/*")
	allTags     = config.RefSpec("+refs/tags/*:refs/tags/*")
)

// clone clones the git context given by scheme and rest (what follows
// "scheme://") into a new directory of the work directory.
func (c *Context) clone(ctx context.Context, scheme, rest string, o options) error {
	src, err := parseGitSource(scheme, rest, o.git)
	if err != nil {
		return err
	}
	dir, err := c.newDir(o)
	if err != nil {
		return err
	}
	// The worktree is confined to dir (go-billy's bound filesystem
	// resolves symlinks inside it): the path it is known by must be real.
	if dir, err = filepath.EvalSymlinks(dir); err != nil {
		return err
	}
	origin, err := url.Parse(src.url)
	if err != nil {
		return err
	}
	start := time.Now()
	o.log.Infof("Fetching the build context from %s", src)
	cl := &cloner{opts: o.git, log: o.log, origin: origin, auth: src.auth}
	commit, err := cl.clone(ctx, dir, src)
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	o.log.Infof("Checked out commit %s of %q in %s", commit, src.url, time.Since(start).Round(time.Millisecond))
	return nil
}

// cloner clones a repository and its submodules.
type cloner struct {
	opts GitOptions
	log  logrus.FieldLogger
	// origin is the context's repository; auth, its credentials, are sent
	// to its server only.
	origin *url.URL
	auth   *githttp.BasicAuth
}

// clone fetches what src names into dir and checks it out, returning the
// commit checked out.
func (cl *cloner) clone(ctx context.Context, dir string, src *gitSource) (plumbing.Hash, error) {
	wt := osfs.New(dir, osfs.WithBoundOS())
	dot, err := wt.Chroot(git.GitDirName)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	repo, err := git.Init(filesystem.NewStorage(dot, cache.NewObjectLRUDefault()), wt)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	remote, err := repo.CreateRemote(&config.RemoteConfig{Name: git.DefaultRemoteName, URLs: []string{src.url}})
	if err != nil {
		return plumbing.ZeroHash, err
	}
	refs, err := cl.list(ctx, remote, src.url)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	name, err := cl.resolve(src.ref, refs)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	tip := refs.commit(name)
	want := tip
	if src.commit != "" {
		want = plumbing.NewHash(src.commit)
	}
	specs := []config.RefSpec{trackingSpec(name)}
	if cl.opts.AllBranches {
		specs = append(specs, allBranches)
	}
	if err := cl.fetch(ctx, repo, src.url, specs, want, want == tip, specs); err != nil {
		return plumbing.ZeroHash, err
	}
	w, err := repo.Worktree()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	// A branch's tip is checked out on a local branch, as git clone does;
	// anything else detached.
	co := &git.CheckoutOptions{Hash: want, Force: true}
	if name.IsBranch() && want == tip {
		co = &git.CheckoutOptions{Branch: name, Hash: want, Create: true, Force: true}
	}
	if err := w.Checkout(co); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("checking out commit %s: %w", want, err)
	}
	if err := repo.Storer.RemoveReference(commitRef); err != nil {
		return plumbing.ZeroHash, err
	}
	if cl.opts.RecurseSubmodules {
		if err := cl.submodules(ctx, repo, maxSubmoduleLevels); err != nil {
			return plumbing.ZeroHash, err
		}
	}
	return want, nil
}

// resolve returns the full name of the ref to fetch: ref as given in the
// URL, the Branch option, or the default branch.
func (cl *cloner) resolve(ref string, refs *remoteRefs) (plumbing.ReferenceName, error) {
	if cl.opts.Branch != "" {
		branch, err := refs.lookup(cl.opts.Branch)
		if err != nil {
			return "", fmt.Errorf("branch option: %w", err)
		}
		if ref == "" {
			return branch, nil
		}
		name, err := refs.lookup(ref)
		if err != nil {
			return "", err
		}
		if name != branch {
			return "", fmt.Errorf("the URL names ref %q but the branch option %q", name, branch)
		}
		return name, nil
	}
	if ref == "" {
		ref = string(plumbing.HEAD)
	}
	return refs.lookup(ref)
}

// trackingSpec fetches the ref name into the local ref git clone would
// use: a branch as a remote-tracking branch, a tag as a tag, anything else
// (refs/pull/1/head, a detached HEAD) under refs/remotes/origin/.
func trackingSpec(name plumbing.ReferenceName) config.RefSpec {
	var dst string
	switch {
	case name.IsBranch():
		dst = "refs/remotes/origin/" + name.Short()
	case name.IsTag():
		dst = name.String()
	default:
		dst = "refs/remotes/origin/" + strings.TrimPrefix(name.String(), "refs/")
	}
	return config.RefSpec("+" + name.String() + ":" + dst)
}

// fetch fetches specs into r from its origin, at rawURL, so that commit
// arrives; atTip says it is the tip of one of specs. History is fetched to
// the configured depth. A commit that is not a tip is asked for by its
// hash, which servers allow when configured to (GitHub and GitLab are);
// when the server refuses, the whole history of fallback is fetched and the
// commit looked for in it. (Deepening a shallow fetch step by step is not an
// option: go-git ignores the server's "unshallow" lines.)
func (cl *cloner) fetch(ctx context.Context, r *git.Repository, rawURL string, specs []config.RefSpec, commit plumbing.Hash, atTip bool, fallback []config.RefSpec) error {
	auth := cl.authFor(rawURL)
	o := &git.FetchOptions{RefSpecs: specs, Depth: cl.opts.depth(), InsecureSkipTLS: cl.opts.InsecureSkipTLS, Tags: git.TagFollowing}
	if auth != nil {
		o.Auth = auth
	}
	if !atTip {
		o.RefSpecs = append(slices.Clone(specs), config.RefSpec("+"+commit.String()+":"+commitRef))
	}
	err := r.FetchContext(ctx, o)
	if errors.Is(err, git.ErrExactSHA1NotSupported) {
		cl.log.Infof("%q does not serve commits by hash: fetching the whole history to find commit %s", redactSpec(rawURL), commit)
		o.RefSpecs, o.Depth = fallback, 0
		err = r.FetchContext(ctx, o)
	}
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return fmt.Errorf("fetching: %w", explainGitError(err, auth))
	}
	if _, err := r.CommitObject(commit); err != nil {
		return fmt.Errorf("commit %s is not in the fetched history: %w", commit, err)
	}
	return nil
}

// authFor returns the credentials to send to rawURL: the context's, when
// it is on the context's server (same scheme, host and port), so that a
// submodule elsewhere never receives them.
func (cl *cloner) authFor(rawURL string) *githttp.BasicAuth {
	u, err := url.Parse(rawURL)
	if err != nil || cl.auth == nil {
		return nil
	}
	if u.Scheme != cl.origin.Scheme || !strings.EqualFold(u.Host, cl.origin.Host) {
		return nil
	}
	return cl.auth
}

// list returns the refs the server at rawURL advertises.
func (cl *cloner) list(ctx context.Context, remote *git.Remote, rawURL string) (*remoteRefs, error) {
	auth := cl.authFor(rawURL)
	o := &git.ListOptions{InsecureSkipTLS: cl.opts.InsecureSkipTLS, PeelingOption: git.AppendPeeled}
	if auth != nil {
		o.Auth = auth
	}
	list, err := remote.ListContext(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("listing refs: %w", explainGitError(err, auth))
	}
	refs := &remoteRefs{byName: map[plumbing.ReferenceName]*plumbing.Reference{}, peeled: map[plumbing.ReferenceName]plumbing.Hash{}}
	for _, r := range list {
		if name, ok := strings.CutSuffix(r.Name().String(), "^{}"); ok {
			refs.peeled[plumbing.ReferenceName(name)] = r.Hash()
			continue
		}
		refs.byName[r.Name()] = r
	}
	return refs, nil
}

// remoteRefs are the refs a server advertises.
type remoteRefs struct {
	byName map[plumbing.ReferenceName]*plumbing.Reference
	// peeled maps annotated tags to the commits they point to.
	peeled map[plumbing.ReferenceName]plumbing.Hash
}

// lookup finds the ref name names: a full name ("HEAD", "refs/..."), or a
// branch or else a tag name, as kaniko resolves its branch option. A
// symbolic ref (HEAD) gives its target.
func (refs *remoteRefs) lookup(name string) (plumbing.ReferenceName, error) {
	candidates := []plumbing.ReferenceName{plumbing.NewBranchReferenceName(name), plumbing.NewTagReferenceName(name)}
	if name == string(plumbing.HEAD) || strings.HasPrefix(name, "refs/") {
		candidates = []plumbing.ReferenceName{plumbing.ReferenceName(name)}
	}
	for _, c := range candidates {
		r, ok := refs.byName[c]
		if !ok {
			continue
		}
		if r.Type() != plumbing.SymbolicReference {
			return c, nil
		}
		if _, ok := refs.byName[r.Target()]; ok {
			return r.Target(), nil
		}
	}
	if name == string(plumbing.HEAD) {
		return "", errors.New("the repository has no default branch (HEAD): name a ref")
	}
	if len(candidates) > 1 {
		return "", fmt.Errorf("ref %q not found: neither %q nor %q exists", name, candidates[0], candidates[1])
	}
	return "", fmt.Errorf("ref %q not found", name)
}

// commit returns the commit the ref name points to.
func (refs *remoteRefs) commit(name plumbing.ReferenceName) plumbing.Hash {
	if h, ok := refs.peeled[name]; ok {
		return h
	}
	return refs.byName[name].Hash()
}

// withCommit returns a ref whose tip is commit, the first by name.
func (refs *remoteRefs) withCommit(commit plumbing.Hash) (plumbing.ReferenceName, bool) {
	var names []plumbing.ReferenceName
	for name, r := range refs.byName {
		if r.Type() == plumbing.HashReference && refs.commit(name) == commit {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return "", false
	}
	return slices.Min(names), true
}

// submodules checks out the submodules of r's worktree at the commits it
// records, and theirs, down to levels deep.
func (cl *cloner) submodules(ctx context.Context, r *git.Repository, levels int) error {
	w, err := r.Worktree()
	if err != nil {
		return err
	}
	subs, err := w.Submodules()
	if err != nil {
		return fmt.Errorf("reading .gitmodules: %w", err)
	}
	if len(subs) == 0 {
		return nil
	}
	if levels == 0 {
		return fmt.Errorf("submodules are nested more than %d levels deep", maxSubmoduleLevels)
	}
	idx, err := r.Storer.Index()
	if err != nil {
		return err
	}
	for _, s := range subs {
		if err := cl.submodule(ctx, s, idx, levels); err != nil {
			return fmt.Errorf("submodule %q: %w", s.Config().Path, err)
		}
	}
	return nil
}

func (cl *cloner) submodule(ctx context.Context, s *git.Submodule, idx *index.Index, levels int) error {
	cfg := s.Config()
	e, err := idx.Entry(cfg.Path)
	if errors.Is(err, index.ErrEntryNotFound) || err == nil && e.Mode != filemode.Submodule {
		// As git does, a .gitmodules entry without its commit in the
		// tree is ignored.
		cl.log.Debugf("Submodule %q: no commit recorded at its path, skipped", cfg.Path)
		return nil
	}
	if err != nil {
		return err
	}
	if err := checkSubmoduleURL(cfg.URL); err != nil {
		return err
	}
	if err := s.Init(); err != nil && !errors.Is(err, git.ErrSubmoduleAlreadyInitialized) {
		return err
	}
	sr, err := s.Repository()
	if err != nil {
		return err
	}
	remote, err := sr.Remote(git.DefaultRemoteName)
	if err != nil {
		return err
	}
	// Relative URLs are resolved against the context's URL by now.
	rawURL := remote.Config().URLs[0]
	cl.log.Infof("Fetching submodule %q from %q at commit %s", cfg.Path, redactSpec(rawURL), e.Hash)
	refs, err := cl.list(ctx, remote, rawURL)
	if err != nil {
		return err
	}
	var specs []config.RefSpec
	name, atTip := refs.withCommit(e.Hash)
	if atTip {
		specs = []config.RefSpec{trackingSpec(name)}
	}
	if err := cl.fetch(ctx, sr, rawURL, specs, e.Hash, atTip, []config.RefSpec{allBranches, allTags}); err != nil {
		return err
	}
	sw, err := sr.Worktree()
	if err != nil {
		return err
	}
	if err := sw.Checkout(&git.CheckoutOptions{Hash: e.Hash, Force: true}); err != nil {
		return fmt.Errorf("checking out commit %s: %w", e.Hash, err)
	}
	if err := sr.Storer.RemoveReference(commitRef); err != nil {
		return err
	}
	return cl.submodules(ctx, sr, levels-1)
}

// checkSubmoduleURL accepts the URLs a build may fetch: http, https and
// git, or relative to the context's. Local paths and file:// URLs would
// copy repositories of the build machine into the context; ssh would need
// keys a build does not have.
func checkSubmoduleURL(raw string) error {
	if strings.HasPrefix(raw, "./") || strings.HasPrefix(raw, "../") {
		return nil
	}
	if u, err := url.Parse(raw); err == nil {
		switch u.Scheme {
		case "http", "https", "git":
			return nil
		}
	}
	return fmt.Errorf("URL %q: only http, https and git URLs, or relative ones, can be fetched", redactSpec(raw))
}
