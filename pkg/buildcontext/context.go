package buildcontext

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/sirupsen/logrus"

	"github.com/kiln-build/kiln/pkg/compression"
	"github.com/kiln-build/kiln/pkg/fsview"
)

// Context is an opened build context.
type Context struct {
	// spec is the spec Open was given, without credentials, for messages.
	spec string
	dir  string
	// extracted is the directory Open extracted an archive or cloned a
	// repository into, removed by Close; "" for a directory context, which
	// is never removed.
	extracted string
	base      *fsview.DirFS
	fs        fsview.FS
}

// Option configures Open.
type Option func(*options)

type options struct {
	subPath string
	workDir string
	stdin   io.Reader
	git     GitOptions
	log     logrus.FieldLogger
}

// WithSubPath uses the directory sub of the context as the context
// (--context-sub-path). It must lie inside the context; symlinks in it are
// resolved inside the context.
func WithSubPath(sub string) Option { return func(o *options) { o.subPath = sub } }

// WithWorkDir sets where archive contexts are extracted, downloaded and
// cloned (the system's temporary directory by default).
func WithWorkDir(dir string) Option { return func(o *options) { o.workDir = dir } }

// WithStdin sets what "tar://stdin" reads (os.Stdin by default).
func WithStdin(r io.Reader) Option { return func(o *options) { o.stdin = r } }

// WithGit configures how git contexts are fetched (see GitOptions).
func WithGit(g GitOptions) Option { return func(o *options) { o.git = g } }

// WithLogger sets where progress is logged (logrus's standard logger by
// default).
func WithLogger(l logrus.FieldLogger) Option { return func(o *options) { o.log = l } }

// Open opens the build context spec:
//
//	path, dir://path    a directory
//	tar://path          a tar archive, plain or compressed with gzip, bzip2,
//	                    xz or zstd (detected from its content)
//	tar://stdin         such an archive read from standard input
//	git://HOST/PATH[#REF[#COMMIT]]
//	                    a git repository, fetched over https (see GitOptions)
//	https://HOST/PATH.git[#REF[#COMMIT]], http://...
//	                    a git repository: the URL's path ends in ".git"
//	https://HOST/PATH, http://...
//	                    any other URL: a tar archive, plain or compressed,
//	                    downloaded
//
// Archives are extracted, and repositories cloned, into a new directory of
// the work directory, which Close removes. Errors name the spec, without the
// credentials a URL may hold.
func Open(ctx context.Context, spec string, opts ...Option) (*Context, error) {
	o := options{stdin: os.Stdin, log: logrus.StandardLogger()}
	for _, opt := range opts {
		opt(&o)
	}
	c, err := open(ctx, spec, o)
	if err != nil {
		return nil, fmt.Errorf("build context %q: %w", redactSpec(spec), err)
	}
	return c, nil
}

func open(ctx context.Context, spec string, o options) (*Context, error) {
	c := &Context{spec: redactSpec(spec)}
	switch scheme, rest := splitScheme(spec); scheme {
	case "", "dir":
		if rest == "" {
			return nil, errors.New("no directory given")
		}
		abs, err := filepath.Abs(rest)
		if err != nil {
			return nil, err
		}
		// The root itself may be reached through symlinks; what lies
		// inside is resolved inside it.
		if c.dir, err = filepath.EvalSymlinks(abs); err != nil {
			return nil, err
		}
	case "tar":
		if rest == "" {
			return nil, errors.New("no archive given (tar://PATH or tar://stdin)")
		}
		if err := c.extractFile(ctx, rest, o); err != nil {
			c.Close()
			return nil, err
		}
	case "git", "http", "https":
		var err error
		if scheme == "git" || isGitURL(rest) {
			err = c.clone(ctx, scheme, rest, o)
		} else {
			err = c.download(ctx, scheme+"://"+rest, o)
		}
		if err != nil {
			c.Close()
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unsupported scheme %q: use a directory, dir://PATH, tar://PATH, tar://stdin, git://, http:// or https://", scheme)
	}
	if err := c.finish(o.subPath); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// splitScheme splits "tar://x" into "tar" and "x"; a spec without a scheme
// is a path.
func splitScheme(spec string) (scheme, rest string) {
	i := strings.Index(spec, "://")
	if i <= 0 {
		return "", spec
	}
	for _, r := range spec[:i] {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '+' || r == '-' || r == '.') {
			return "", spec
		}
	}
	return strings.ToLower(spec[:i]), spec[i+3:]
}

// redactSpec removes the credentials a URL spec may hold
// ("git://TOKEN@host/...", "https://user:password@host/..."), so that
// messages can name it.
func redactSpec(spec string) string {
	scheme, rest := splitScheme(spec)
	if scheme == "" || scheme == "dir" || scheme == "tar" {
		return spec
	}
	hostEnd := strings.IndexAny(rest, "/?#")
	if hostEnd < 0 {
		hostEnd = len(rest)
	}
	at := strings.LastIndex(rest[:hostEnd], "@")
	if at < 0 {
		return spec
	}
	return spec[:len(spec)-len(rest)] + rest[at+1:]
}

// extractFile extracts the archive at path src, or standard input.
func (c *Context) extractFile(ctx context.Context, src string, o options) error {
	if src == "stdin" {
		// Standard input may never end: the extraction must still stop
		// when ctx is done.
		r := readerWithContext(ctx, o.stdin)
		defer r.Close()
		return c.extract(ctx, r, o)
	}
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	return c.extract(ctx, f, o)
}

// extract extracts the archive r into a new directory of the work
// directory, which becomes the context.
func (c *Context) extract(ctx context.Context, r io.Reader, o options) error {
	dir, err := c.newDir(o)
	if err != nil {
		return err
	}
	rd, _, err := compression.Decompress(r)
	if err != nil {
		return err
	}
	defer rd.Close()
	return extractTar(ctx, rd, dir, o.log)
}

// newDir creates the directory, removed by Close, that an archive is
// extracted or a repository cloned into.
func (c *Context) newDir(o options) (string, error) {
	dir, err := os.MkdirTemp(o.workDir, "kiln-context-")
	if err != nil {
		return "", fmt.Errorf("creating the context directory: %w", err)
	}
	c.extracted, c.dir = dir, dir
	return dir, nil
}

// finish applies the sub-path and checks the result is a directory.
func (c *Context) finish(sub string) error {
	if sub != "" {
		p, err := securejoin.SecureJoin(c.dir, sub)
		if err != nil {
			return fmt.Errorf("context sub-path %q: %w", sub, err)
		}
		c.dir = p
	}
	st, err := os.Stat(c.dir)
	if err != nil {
		if sub != "" {
			return fmt.Errorf("context sub-path %q: %w", sub, err)
		}
		return err
	}
	if !st.IsDir() {
		if sub != "" {
			return fmt.Errorf("context sub-path %q is not a directory", sub)
		}
		return fmt.Errorf("%q is not a directory (an archive is given as tar://PATH)", c.dir)
	}
	base, err := fsview.NewDirFS(c.dir)
	if err != nil {
		return err
	}
	c.base, c.fs = base, base
	return nil
}

// Dir returns the directory on disk holding the context (the sub-path when
// one is set). Ignored files are present there; read through FS to honour
// the ignore file.
func (c *Context) Dir() string { return c.dir }

// FS returns the context with the files excluded by the ignore file hidden,
// once LoadIgnore has read one. Symlinks resolve inside the context.
func (c *Context) FS() fsview.FS { return c.fs }

// Close removes what Open extracted. A directory context is left alone.
func (c *Context) Close() error {
	if c.extracted == "" {
		return nil
	}
	if err := os.RemoveAll(c.extracted); err != nil {
		return fmt.Errorf("build context %q: removing %q: %w", c.spec, c.extracted, err)
	}
	c.extracted = ""
	return nil
}

// readerWithContext reads r until ctx is done, even when a Read of r blocks
// (a terminal or a pipe that is never closed): that Read is left behind, to
// end with the process or when data comes. Close when done reading.
func readerWithContext(ctx context.Context, r io.Reader) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		_, err := io.Copy(pw, r)
		pw.CloseWithError(err)
	}()
	stop := context.AfterFunc(ctx, func() { pw.CloseWithError(ctx.Err()) })
	return &ctxReader{PipeReader: pr, stop: stop}
}

type ctxReader struct {
	*io.PipeReader
	stop func() bool
}

func (r *ctxReader) Close() error {
	r.stop()
	return r.PipeReader.Close()
}
