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

	"github.com/kiln-build/kiln/pkg/fsview"
)

// Context is an opened build context.
type Context struct {
	spec string
	dir  string
	// extracted is the directory Open extracted an archive into, removed by
	// Close; "" for a directory context, which is never removed.
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
}

// WithSubPath uses the directory sub of the context as the context
// (--context-sub-path). It must lie inside the context; symlinks in it are
// resolved inside the context.
func WithSubPath(sub string) Option { return func(o *options) { o.subPath = sub } }

// WithWorkDir sets where archive contexts are extracted (the system's
// temporary directory by default).
func WithWorkDir(dir string) Option { return func(o *options) { o.workDir = dir } }

// WithStdin sets what "tar://stdin" reads (os.Stdin by default).
func WithStdin(r io.Reader) Option { return func(o *options) { o.stdin = r } }

// Open opens the build context spec:
//
//	path, dir://path    a directory
//	tar://path          a tar archive, plain or compressed with gzip, bzip2,
//	                    xz or zstd (detected from its content)
//	tar://stdin         such an archive read from standard input
//
// Archives are extracted into a new directory of the work directory, which
// Close removes. Errors name the spec.
func Open(ctx context.Context, spec string, opts ...Option) (*Context, error) {
	o := options{stdin: os.Stdin}
	for _, opt := range opts {
		opt(&o)
	}
	c, err := open(ctx, spec, o)
	if err != nil {
		return nil, fmt.Errorf("build context %q: %w", spec, err)
	}
	return c, nil
}

func open(ctx context.Context, spec string, o options) (*Context, error) {
	c := &Context{spec: spec}
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
		if err := c.extract(ctx, rest, o); err != nil {
			c.Close()
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unsupported scheme %q: use a directory, dir://PATH, tar://PATH or tar://stdin", scheme)
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

func (c *Context) extract(ctx context.Context, src string, o options) error {
	var r io.Reader
	if src == "stdin" {
		r = o.stdin
	} else {
		f, err := os.Open(src)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	dir, err := os.MkdirTemp(o.workDir, "kiln-context-")
	if err != nil {
		return fmt.Errorf("creating the extraction directory: %w", err)
	}
	c.extracted, c.dir = dir, dir
	rd, err := decompress(r)
	if err != nil {
		return err
	}
	defer rd.Close()
	return extractTar(ctx, rd, dir)
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
