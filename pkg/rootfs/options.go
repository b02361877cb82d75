package rootfs

import (
	"archive/tar"

	"github.com/sirupsen/logrus"
)

type options struct {
	layer             string
	ignore            func(p string) bool
	filter            func(p string) bool
	ignoreChownErrors bool
	noOwners          bool
	noSpecialFiles    bool
	literalWhiteouts  bool
	overlayWhiteouts  bool
	headers           func(*tar.Header)
	log               logrus.FieldLogger
}

func newOptions(opts []Option) options {
	o := options{log: logrus.StandardLogger()}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Option configures Extract and Apply.
type Option func(*options)

// WithLayerName names the layer (its digest) in errors and logs.
func WithLayerName(name string) Option {
	return func(o *options) { o.layer = name }
}

// WithIgnore leaves the container paths for which ignore returns true
// untouched, with everything below them: entries there are skipped, and
// whiteouts and replacements never remove them. The predicate is asked about
// resolved paths ("/run/x" for an entry "var/run/x" when /var/run -> /run),
// so a protected mount point cannot be reached through a symlink.
func WithIgnore(ignore func(p string) bool) Option {
	return func(o *options) { o.ignore = ignore }
}

// WithFilter extracts only the entries whose container path (the entry name
// made absolute, "/etc/passwd") filter accepts; whiteouts always apply. A hard
// link whose target was filtered out cannot be created and fails: select link
// targets too (fsview.LayerFS reports them as Entry.Inode).
func WithFilter(filter func(p string) bool) Option {
	return func(o *options) { o.filter = filter }
}

// WithChownErrorsIgnored keeps going when ownership cannot be set, as in a
// user namespace whose id map lacks the ids an image uses: files keep the
// extracting user's ids and one warning is logged.
func WithChownErrorsIgnored(ignore bool) Option {
	return func(o *options) { o.ignoreChownErrors = ignore }
}

// WithOverlayWhiteouts extracts a layer on its own into an empty
// directory, to be an overlayfs lower layer: a whiteout becomes overlay's
// (a character device 0/0 in the name's place), an opaque directory gets
// overlay's trusted.overlay.opaque attribute. It needs root, as overlay
// does.
func WithOverlayWhiteouts() Option {
	return func(o *options) { o.overlayWhiteouts = true }
}

// WithoutOwners ignores the entries' user and group ids: everything belongs
// to the extracting user. For archives whose ids mean nothing here, such as
// a build context (COPY sets the owner itself).
func WithoutOwners() Option {
	return func(o *options) { o.noOwners = true }
}

// WithoutSpecialFiles refuses device nodes and named pipes: such an entry
// fails the extraction with ErrSpecialFile. For archives that are not image
// layers, which have no business carrying them.
func WithoutSpecialFiles() Option {
	return func(o *options) { o.noSpecialFiles = true }
}

// WithLiteralWhiteouts extracts names starting with ".wh." as the files they
// are instead of interpreting them as OCI whiteouts: for archives that are
// not image layers, where such a name deletes nothing.
func WithLiteralWhiteouts() Option {
	return func(o *options) { o.literalWhiteouts = true }
}

// WithHeaders calls fn with a copy of each entry's header as it is read,
// before the entry is applied: a layer's tree can be recorded in the same
// pass that extracts it.
func WithHeaders(fn func(*tar.Header)) Option {
	return func(o *options) { o.headers = fn }
}

// WithLogger sets the logger for warnings and debug details.
func WithLogger(l logrus.FieldLogger) Option {
	return func(o *options) { o.log = l }
}
