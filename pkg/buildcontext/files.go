package buildcontext

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/kiln-build/kiln/pkg/rootfs"
)

// MaxIgnoreFileSize is the size of the largest ignore file read: far more
// than any real one, and bounded so that a link to /dev/zero cannot exhaust
// memory.
const MaxIgnoreFileSize = 4 << 20

// ReadDockerfile reads the Dockerfile name for the build context in the
// directory contextDir, refusing one over limit bytes. It returns the
// content and the Dockerfile's host path, which LoadIgnore takes ("" for
// "-", which reads stdin: that read stops when ctx is done, even if stdin
// never ends).
//
// A relative name is looked up in the context first, then, as kaniko does,
// relative to the current directory; an absolute name is used as is. A
// Dockerfile inside the context, however it is named, is read like any
// COPY source: symlinks resolve inside the context, so a Dockerfile that
// links to /kaniko/.docker/config.json is not found rather than read.
// Only a path outside the context, which the user typed, is read on the
// host with its symlinks. Either way only a regular file is read: a named
// pipe or a device fails at once.
func ReadDockerfile(ctx context.Context, contextDir, name string, stdin io.Reader, limit int64) ([]byte, string, error) {
	if name == "-" {
		r := readerWithContext(ctx, stdin)
		defer r.Close()
		data, err := io.ReadAll(io.LimitReader(r, limit+1))
		if err == nil && int64(len(data)) > limit {
			err = fmt.Errorf("%w: more than the limit of %d bytes", rootfs.ErrTooLarge, limit)
		}
		if err != nil {
			return nil, "", fmt.Errorf("reading the Dockerfile from standard input: %w", err)
		}
		return data, "", nil
	}
	if !filepath.IsAbs(name) && !climbs(name) {
		rel := "/" + filepath.ToSlash(filepath.Clean(name))
		data, found, err := readInDir(contextDir, rel, limit)
		if found || err != nil {
			if err != nil {
				return nil, "", fmt.Errorf("Dockerfile %q in the build context %q: %w", name, contextDir, err)
			}
			return data, filepath.Join(contextDir, filepath.FromSlash(rel)), nil
		}
	}
	abs, err := filepath.Abs(name)
	if err != nil {
		return nil, "", fmt.Errorf("Dockerfile %q: %w", name, err)
	}
	var data []byte
	if rel, ok := pathInDir(contextDir, abs); ok {
		var found bool
		data, found, err = readInDir(contextDir, rel, limit)
		if found && err != nil {
			return nil, "", fmt.Errorf("Dockerfile %q in the build context %q: %w", name, contextDir, err)
		}
		if !found {
			err = fs.ErrNotExist
		}
		abs = filepath.Join(contextDir, filepath.FromSlash(rel))
	} else {
		data, err = rootfs.ReadHostFile(abs, limit)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("Dockerfile %q not found in the build context %q nor in the current directory", name, contextDir)
	}
	if err != nil {
		return nil, "", fmt.Errorf("Dockerfile %q: %w", name, err)
	}
	return data, abs, nil
}

// readFile reads the file at the host path p, inside the context when it
// lies there (symlinks resolving inside it), on the host otherwise.
func (c *Context) readFile(p string, limit int64) ([]byte, error) {
	if rel, ok := pathInDir(c.dir, p); ok {
		data, found, err := readInDir(c.dir, rel, limit)
		if err == nil && !found {
			err = fs.ErrNotExist
		}
		return data, err
	}
	return rootfs.ReadHostFile(p, limit)
}

// readInDir reads rel inside dir with chroot semantics. found is false when
// nothing has that name; a name that exists but cannot be read (a symlink
// leading nowhere inside dir, a named pipe) is an error.
func readInDir(dir, rel string, limit int64) (data []byte, found bool, err error) {
	root, err := rootfs.OpenRoot(dir)
	if err != nil {
		return nil, false, err
	}
	defer root.Close()
	fi, err := root.Lstat(rel)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	data, err = root.ReadFile(rel, limit)
	if err != nil && fi.Mode()&fs.ModeSymlink != 0 && errors.Is(err, fs.ErrNotExist) {
		err = fmt.Errorf("%w (a symlink resolves inside the build context, never outside)", err)
	}
	return data, true, err
}

// pathInDir returns the path inside dir of the host path p when p lies
// there: below dir itself, or below a directory that is dir under another
// name (a symlink above the context, /builds -> /mnt/builds). Only the
// directories above dir are compared, never followed below it.
func pathInDir(dir, p string) (string, bool) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", false
	}
	if rel, err := filepath.Rel(dir, abs); err == nil && !climbs(rel) {
		return "/" + filepath.ToSlash(rel), true
	}
	want, err := os.Stat(dir)
	if err != nil {
		return "", false
	}
	parts := strings.Split(strings.TrimPrefix(abs, "/"), "/")
	for i := range parts {
		d := "/" + strings.Join(parts[:i], "/")
		if st, err := os.Stat(d); err == nil && os.SameFile(st, want) {
			return "/" + strings.Join(parts[i:], "/"), true
		}
	}
	return "", false
}

// climbs reports whether the relative path p leads above where it starts.
func climbs(p string) bool {
	p = filepath.ToSlash(filepath.Clean(p))
	return p == ".." || strings.HasPrefix(p, "../")
}
