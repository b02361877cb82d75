package rootfs

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// ErrPathEscapes is returned for an entry whose name or hard link target
// climbs out of the root.
var ErrPathEscapes = errors.New("path escapes the root")

// Apply extracts one layer (an uncompressed tar stream) onto root, with OCI
// whiteout semantics. Errors name the layer (WithLayerName) and the entry.
func Apply(ctx context.Context, root string, r io.Reader, opts ...Option) error {
	o := options{log: logrus.StandardLogger()}
	for _, opt := range opts {
		opt(&o)
	}
	layerError := func(err error) error { return err }
	if o.layer != "" {
		o.log = o.log.WithField("layer", o.layer)
		layerError = func(err error) error { return fmt.Errorf("layer %s: %w", o.layer, err) }
	}
	x, err := newExtractor(root, o)
	if err != nil {
		return layerError(err)
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
			return layerError(fmt.Errorf("reading tar: %w", err))
		}
		if err := x.entry(hdr, tr); err != nil {
			return layerError(fmt.Errorf("entry %q: %w", hdr.Name, err))
		}
	}
	if err := x.setDirTimes(); err != nil {
		return layerError(err)
	}
	return nil
}

// extractor holds the state of one Apply.
type extractor struct {
	opts     options
	rootFile *os.File
	rootHost string // real host path of the root, to map handles back to container paths
	dirs     dirCache
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

func newExtractor(root string, o options) (*extractor, error) {
	x := &extractor{
		opts:     o,
		written:  map[string]writeMark{},
		dirTimes: map[string][2]unix.Timespec{},
		buf:      make([]byte, 128<<10),
		warned:   map[string]bool{},
		uid:      os.Geteuid(),
		gid:      os.Getegid(),
		umask:    currentUmask(),
	}
	f, err := os.OpenFile(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening root: %w", err)
	}
	x.rootFile = f
	if x.rootHost, err = fdPath(int(f.Fd())); err == nil {
		x.dirs, err = newDirCache(int(f.Fd()))
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("opening root %q: %w", root, err)
	}
	return x, nil
}

func (x *extractor) close() {
	x.dirs.reset()
	x.rootFile.Close()
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
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	x.dirs.refresh()
	dir, base := path.Split(name)
	if strings.HasPrefix(base, whiteoutPrefix) {
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
			return err
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
			err = fmt.Errorf("hard link target %q does not exist", hdr.Linkname)
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

// cleanName turns a tar name into a clean absolute container path. Absolute
// names are taken relative to the root, as runtimes do; names that climb
// above it are rejected.
func cleanName(name string) (string, error) {
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

// linkTarget locates an existing hard link target.
func (x *extractor) linkTarget(linkname string) (target, error) {
	name, err := cleanName(linkname)
	if err != nil {
		return target{}, fmt.Errorf("hard link target %q: %w", linkname, err)
	}
	dir, base := path.Split(name)
	h, err := x.dir(path.Clean(dir), false)
	if err != nil {
		return target{}, fmt.Errorf("hard link target %q: %w", linkname, err)
	}
	if h == nil {
		return target{}, fmt.Errorf("hard link target %q does not exist", linkname)
	}
	if h.ignored || x.ignored(path.Join(h.path, base)) {
		return target{}, fmt.Errorf("hard link target %q is an ignored path", linkname)
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
