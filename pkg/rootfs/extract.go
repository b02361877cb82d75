package rootfs

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Apply extracts one layer (an uncompressed tar stream) onto the directory
// root: it is OpenRoot followed by Extract. Errors name the layer
// (WithLayerName) and the entry.
func Apply(ctx context.Context, root string, r io.Reader, opts ...Option) error {
	rt, err := OpenRoot(root)
	if err != nil {
		o := newOptions(opts)
		if o.layer != "" {
			return fmt.Errorf("layer %s: %w", o.layer, err)
		}
		return err
	}
	defer rt.Close()
	return rt.Extract(ctx, r, opts...)
}

// Extract extracts a tar stream (uncompressed) into the root. By default it
// is an image layer: OCI whiteouts delete what lower layers left, owners,
// modes, times, extended attributes, devices and named pipes are created as
// the entries say. Options select what else it is (WithoutOwners,
// WithoutSpecialFiles, WithLiteralWhiteouts for an archive that is not a
// layer) and what to skip (WithIgnore, WithFilter).
//
// Nothing the stream says can create, change or link to anything outside
// the root: names that climb out with ".." fail with ErrPathEscapes,
// absolute names and symlinks resolve inside the root. Errors about the
// stream or an entry are *ExtractError values.
//
// Extract assumes nobody else changes the root meanwhile: it caches handles
// on the directories it writes to (they stay inside the root whatever
// happens, but a concurrent rename could redirect an entry).
func (rt *Root) Extract(ctx context.Context, r io.Reader, opts ...Option) error {
	o := newOptions(opts)
	if o.layer != "" {
		o.log = o.log.WithField("layer", o.layer)
	}
	x, err := newExtractor(rt, o)
	if err != nil {
		if o.layer != "" {
			return fmt.Errorf("layer %s: %w", o.layer, err)
		}
		return err
	}
	defer x.close()

	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return &ExtractError{Layer: o.layer, Err: err}
		}
		if o.headers != nil {
			c := *hdr
			c.PAXRecords = maps.Clone(hdr.PAXRecords)
			o.headers(&c)
		}
		if err := x.entry(hdr, tr); err != nil {
			xe := &ExtractError{Layer: o.layer, Header: hdr, Err: err}
			var le linkError
			if errors.As(err, &le) {
				xe.Link, xe.Err = true, le.err
			}
			return xe
		}
	}
	if err := x.setDirTimes(); err != nil {
		if o.layer != "" {
			return fmt.Errorf("layer %s: %w", o.layer, err)
		}
		return err
	}
	return nil
}

// extractor holds the state of one Extract.
type extractor struct {
	opts options
	root *Root
	dirs dirCache
	// written records, by resolved container path, what this layer created,
	// so that whiteouts and opaque directories spare it whatever the order
	// of the tar.
	written  map[string]writeMark
	dirTimes map[string][2]unix.Timespec
	buf      []byte
	warned   map[string]bool
	// uid and gid own what the extraction creates before it is chowned.
	uid, gid int
	umask    int // -1 when unknown
}

type writeMark uint8

const (
	markWritten    writeMark = 1 << iota // the path itself is an entry of this layer
	markDescendant                       // something below the path is
)

func newExtractor(rt *Root, o options) (*extractor, error) {
	x := &extractor{
		opts:     o,
		root:     rt,
		written:  map[string]writeMark{},
		dirTimes: map[string][2]unix.Timespec{},
		buf:      make([]byte, 128<<10),
		warned:   map[string]bool{},
		uid:      os.Geteuid(),
		gid:      os.Getegid(),
		umask:    currentUmask(),
	}
	var err error
	if x.dirs, err = newDirCache(rt.fd()); err != nil {
		return nil, fmt.Errorf("opening root %q: %w", rt.host, err)
	}
	return x, nil
}

func (x *extractor) close() {
	x.dirs.reset()
}

// target is where an entry goes: the name base in the directory handle dir,
// which is the resolved container path p.
type target struct {
	dir    int
	base   string
	p      string
	setgid bool // of the directory
}

const (
	whiteoutPrefix = ".wh."
	// whiteoutMetaPrefix starts AUFS bookkeeping names, of which only the
	// opaque marker means something to other runtimes.
	whiteoutMetaPrefix = whiteoutPrefix + whiteoutPrefix
	opaqueWhiteout     = whiteoutMetaPrefix + ".opq"
)

func (x *extractor) entry(hdr *tar.Header, r io.Reader) error {
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if x.opts.noSpecialFiles {
			return fmt.Errorf("%w: device nodes and named pipes are refused here", ErrSpecialFile)
		}
	}
	name, err := EntryPath(hdr.Name)
	if err != nil {
		return err
	}
	x.dirs.refresh()
	dir, base := path.Split(name)
	if !x.opts.literalWhiteouts && strings.HasPrefix(base, whiteoutPrefix) {
		return x.whiteout(dir, base)
	}
	if x.opts.filter != nil && !x.opts.filter(name) {
		return nil
	}

	// A hard link's target is resolved first: both handles stay valid for
	// the whole entry (the cache only drops handles between entries).
	var linkTo target
	if hdr.Typeflag == tar.TypeLink {
		if linkTo, err = x.linkTarget(hdr.Linkname); err != nil {
			return linkError{err}
		}
	}
	at, ok, err := x.target(name)
	if err != nil || !ok {
		return err
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		err = x.makeDir(at, hdr)
	case tar.TypeReg, tar.TypeGNUSparse: // the reader expands sparse files
		err = x.writeFile(at, hdr, r)
	case tar.TypeSymlink:
		err = x.replace(at, func() error { return unix.Symlinkat(hdr.Linkname, at.dir, at.base) })
		if err == nil {
			err = x.setMetadata(at, hdr, false, false)
		}
	case tar.TypeLink:
		err = x.replace(at, func() error { return unix.Linkat(linkTo.dir, linkTo.base, at.dir, at.base, 0) })
		if errors.Is(err, unix.ENOENT) {
			err = linkError{unix.ENOENT}
		}
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		err = x.makeNode(at, hdr)
	default:
		return fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
	}
	if err != nil {
		return err
	}
	x.markWritten(at.p)
	return nil
}

// EntryPath returns the clean absolute container path a tar entry name (or
// hard link target) stands for: "etc/passwd", "./etc/passwd" and
// "/etc/passwd" are all "/etc/passwd", as container runtimes read them. A
// relative name that climbs above the root ("../x", "a/../../x") fails with
// ErrPathEscapes; ".." at the start of an absolute name stops at the root.
func EntryPath(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return path.Clean(name), nil
	}
	clean := path.Clean(name)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", ErrPathEscapes
	}
	return path.Clean("/" + clean), nil
}

// target locates the entry name, creating missing parent directories. It
// reports false when the entry is to be skipped because it is ignored.
func (x *extractor) target(name string) (target, bool, error) {
	if name == "/" {
		return target{dir: x.dirs.rootFd, base: ".", p: "/"}, true, nil
	}
	dir, base := path.Split(name)
	h, err := x.dir(path.Clean(dir), true)
	if err != nil {
		return target{}, false, err
	}
	at := target{dir: h.fd, base: base, p: path.Join(h.path, base), setgid: h.setgid}
	if h.ignored || x.ignored(at.p) {
		x.opts.log.Debugf("skipping ignored path %q", at.p)
		return target{}, false, nil
	}
	return at, true, nil
}

// linkTarget locates an existing hard link target. Its errors concern the
// target, not the entry: the caller marks them so.
func (x *extractor) linkTarget(linkname string) (target, error) {
	name, err := EntryPath(linkname)
	if err != nil {
		return target{}, err
	}
	dir, base := path.Split(name)
	h, err := x.dir(path.Clean(dir), false)
	if err != nil {
		return target{}, err
	}
	if h == nil {
		return target{}, unix.ENOENT
	}
	if h.ignored || x.ignored(path.Join(h.path, base)) {
		return target{}, errIgnoredLinkTarget
	}
	return target{dir: h.fd, base: base, p: path.Join(h.path, base)}, nil
}

func (x *extractor) ignored(p string) bool {
	return x.opts.ignore != nil && x.opts.ignore(p)
}

func (x *extractor) markWritten(p string) {
	x.written[p] |= markWritten
	for p != "/" {
		p = path.Dir(p)
		if x.written[p]&markDescendant != 0 {
			return
		}
		x.written[p] |= markDescendant
	}
}

// warnOnce logs a warning the first time a kind of problem occurs and debug
// lines after that, so a layer full of device nodes does not flood the log.
func (x *extractor) warnOnce(kind, format string, args ...any) {
	if x.warned[kind] {
		x.opts.log.Debugf(format, args...)
		return
	}
	x.warned[kind] = true
	x.opts.log.Warnf(format, args...)
}

// currentUmask reads the process umask without changing it (umask(2) can
// only be read by setting it, which would race with other goroutines).
func currentUmask() int {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			if m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
				return int(m)
			}
		}
	}
	return -1
}
