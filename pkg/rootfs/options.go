package rootfs

import "github.com/sirupsen/logrus"

type options struct {
	layer             string
	ignore            func(p string) bool
	filter            func(p string) bool
	ignoreChownErrors bool
	overlayWhiteouts  bool
	log               logrus.FieldLogger
}

// Option configures Apply.
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

// WithLogger sets the logger for warnings and debug details.
func WithLogger(l logrus.FieldLogger) Option {
	return func(o *options) { o.log = l }
}
