package copier

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/moby/patternmatcher"

	"github.com/kiln-build/kiln/pkg/fsview"
	"github.com/kiln-build/kiln/pkg/layer"
)

// Owner is a resolved --chown: numeric ids (see userdb.LookupOwner).
type Owner struct{ UID, GID int }

// Inline is a file given in the Dockerfile itself (COPY <<EOF /dst). It is
// created with mode 0644, like BuildKit, before --chmod.
type Inline struct {
	Name string // the here-document word, the file's name in a directory
	Data []byte
}

// Request describes one COPY or ADD. Strings are already expanded
// (ARG/ENV substituted) and names already resolved to ids.
type Request struct {
	// Sources as written: paths or globs relative to the root of Src, and
	// for ADD http(s):// URLs.
	Sources []string
	// Dest is the destination; a relative one is resolved against Workdir
	// here. A trailing "/" makes it a directory.
	Dest    string
	Workdir string
	// Src is where local sources are read: the build context (with
	// .dockerignore applied) or a stage's or image's filesystem.
	Src fsview.FS
	// Dst is the stage's filesystem before the instruction; nil is an empty
	// one. It is not consulted with Link.
	Dst fsview.FS
	// Chown, when set, owns everything copied and every directory created.
	// Otherwise sources from the build context (FromContext) become 0:0 and
	// other sources keep their ids.
	Chown *Owner
	// Chmod is "", octal ("755", "0644") or symbolic ("u+x,g-w", "a=rX").
	Chmod string
	// Exclude holds --exclude patterns (.dockerignore syntax), matched
	// against paths relative to each copied directory (and, for glob
	// matches, relative to where the glob starts).
	Exclude []string
	// Parents keeps each source's path under Dest (COPY --parents); a "/./"
	// in a source marks where the kept part starts.
	Parents bool
	// Link copies as if the stage were empty (COPY --link).
	Link bool
	// Add enables ADD semantics: local archives are extracted, URLs fetched.
	Add bool
	// Checksum verifies the download of a single URL: "sha256:<hex>",
	// "sha384:<hex>" or "sha512:<hex>".
	Checksum string
	// Heredocs are inline files, copied after Sources.
	Heredocs    []Inline
	FromContext bool
	// HTTPClient fetches URLs; nil is http.DefaultClient.
	HTTPClient *http.Client
}

// Result tells what a copy wrote, for history and logs.
type Result struct {
	// Entries counts every tar entry, existing parent directories included.
	Entries int
	// Files counts the regular files (and hard links) copied, Bytes their
	// content.
	Files int
	Bytes int64
	// Digest ("sha256:...") covers what was copied: paths, types, modes,
	// owners, link targets and contents; not modification times and not the
	// existing parent directories, so it does not change with the base.
	Digest string
	// Paths is where each source landed (a file, or the directory that
	// received a directory's or an archive's contents), in order.
	Paths []string
}

// Copy writes to tw the entries the instruction adds to the stage. The
// destination is only read through req.Dst: the caller never needs the
// stage on disk. Paths in the layer are resolved through the stage's
// symlinks (chroot semantics), so /bin/x lands in usr/bin/x on a merged-/usr
// base; parent directories are written too, with their existing metadata or
// created 0755.
func Copy(ctx context.Context, req *Request, tw layer.TarWriter) (*Result, error) {
	c, err := newCopier(ctx, req, tw)
	if err != nil {
		return nil, err
	}
	// Every local source is resolved first: a missing one fails the
	// instruction before anything is downloaded or written.
	locals := make([][]*localSource, len(req.Sources))
	for i, src := range req.Sources {
		if !isURL(src) {
			if locals[i], err = c.expand(src); err != nil {
				return nil, err
			}
		}
	}
	if c.dest.dir {
		// Created even when every match is excluded, as BuildKit does.
		if _, err := c.destDir(); err != nil {
			return nil, err
		}
	}
	for i, src := range req.Sources {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if isURL(src) {
			p, err := c.copyURL(src)
			if err != nil {
				return nil, err
			}
			c.res.Paths = append(c.res.Paths, p)
			continue
		}
		for _, s := range locals[i] {
			p, err := c.copyLocal(s)
			if err != nil {
				return nil, err
			}
			c.res.Paths = append(c.res.Paths, p)
		}
	}
	for _, h := range req.Heredocs {
		p, err := c.copyInline(h)
		if err != nil {
			return nil, err
		}
		c.res.Paths = append(c.res.Paths, p)
	}
	c.res.Digest = "sha256:" + hex.EncodeToString(c.sum.Sum(nil))
	return &c.res, nil
}

type copier struct {
	ctx      context.Context
	req      *Request
	tw       layer.TarWriter
	dst      *tree
	dest     destination
	mode     *chmod
	exclude  *patternmatcher.PatternMatcher
	checksum *checksum
	now      time.Time
	// links maps the Inode of a source file to where it was written, so
	// that hard links stay links. As with buildah and BuildKit, only links
	// within one source item are kept.
	links map[string]string
	// parentDirs maps the source directories --parents recreated to where
	// they went, so that items sharing a parent write it once.
	parentDirs map[string]string
	res        Result
	sum        hash.Hash
}

func newCopier(ctx context.Context, req *Request, tw layer.TarWriter) (*copier, error) {
	c := &copier{
		ctx:        ctx,
		req:        req,
		tw:         tw,
		dest:       newDestination(req),
		now:        time.Now(),
		parentDirs: map[string]string{},
		sum:        sha256.New(),
	}
	if req.Link {
		c.dst = newTree(nil)
	} else {
		c.dst = newTree(req.Dst)
	}
	if len(req.Sources)+len(req.Heredocs) == 0 {
		return nil, errors.New("no source to copy")
	}
	for _, src := range req.Sources {
		if isURL(src) && !req.Add {
			return nil, fmt.Errorf("%q: COPY does not download URLs, use ADD", src)
		}
	}
	for _, h := range req.Heredocs {
		if n := path.Base(fsview.Clean(h.Name)); n == "/" {
			return nil, fmt.Errorf("here-document %q: no file name", h.Name)
		}
	}
	var err error
	if req.Chmod != "" {
		if c.mode, err = parseChmod(req.Chmod); err != nil {
			return nil, err
		}
	}
	if len(req.Exclude) > 0 {
		if c.exclude, err = newExcludeMatcher(req.Exclude); err != nil {
			return nil, err
		}
	}
	if req.Checksum != "" {
		if !req.Add || len(req.Sources) != 1 || !isURL(req.Sources[0]) || len(req.Heredocs) > 0 {
			return nil, fmt.Errorf("--checksum=%s: only a single URL source of ADD can be verified", req.Checksum)
		}
		if c.checksum, err = parseChecksum(req.Checksum); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// newExcludeMatcher compiles --exclude patterns. Paths matched are relative,
// so a leading "/" means the same as none.
func newExcludeMatcher(patterns []string) (*patternmatcher.PatternMatcher, error) {
	clean := make([]string, len(patterns))
	for i, p := range patterns {
		if rest, ok := strings.CutPrefix(p, "!"); ok {
			clean[i] = "!" + strings.TrimLeft(rest, "/")
		} else {
			clean[i] = strings.TrimLeft(p, "/")
		}
	}
	pm, err := patternmatcher.New(clean)
	if err != nil {
		return nil, fmt.Errorf("invalid --exclude pattern in %q: %w", patterns, err)
	}
	return pm, nil
}

// excluded reports whether --exclude leaves out the source at rel. A
// directory matched by a pattern is still entered when an exception ("!")
// may bring back something below it.
func (c *copier) excluded(rel string, isDir bool) (bool, error) {
	if c.exclude == nil || rel == "" {
		return false, nil
	}
	m, err := c.exclude.MatchesOrParentMatches(rel)
	if err != nil || !m {
		return false, err
	}
	if isDir && c.exclude.Exclusions() {
		for _, p := range c.exclude.Patterns() {
			if p.Exclusion() && strings.HasPrefix(p.String()+"/", rel+"/") {
				return false, nil
			}
		}
	}
	return true, nil
}

// owner is the owner of what the copy creates rather than copies.
func (c *copier) owner() (uid, gid int) {
	if c.req.Chown != nil {
		return c.req.Chown.UID, c.req.Chown.GID
	}
	return 0, 0
}

// chmodOf applies --chmod to the permissions of a file the copy creates.
func (c *copier) chmodOf(perm fs.FileMode) fs.FileMode {
	if c.mode == nil {
		return perm
	}
	return c.mode.apply(perm)
}

// adopt returns a copy of the source entry e with the ownership and mode it
// gets in the layer.
func (c *copier) adopt(e *fsview.Entry) *fsview.Entry {
	n := e.Clone()
	switch {
	case c.req.Chown != nil:
		n.UID, n.GID = c.req.Chown.UID, c.req.Chown.GID
	case c.req.FromContext:
		n.UID, n.GID = 0, 0
	}
	if c.mode != nil && !n.IsSymlink() {
		n.Mode = c.mode.apply(n.Mode)
	}
	return n
}

// copyInline writes a here-document.
func (c *copier) copyInline(h Inline) (string, error) {
	target, err := c.fileTarget(path.Base(fsview.Clean(h.Name)))
	if err != nil {
		return "", err
	}
	uid, gid := c.owner()
	e := &fsview.Entry{Mode: c.chmodOf(0o644), Size: int64(len(h.Data)), UID: uid, GID: gid, ModTime: c.now}
	return target, c.putNonDir(target, e, bytes.NewReader(h.Data))
}
