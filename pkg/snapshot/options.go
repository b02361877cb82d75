package snapshot

import (
	"runtime"

	"github.com/sirupsen/logrus"
)

type options struct {
	ignore  func(p string) bool
	log     logrus.FieldLogger
	workers int
}

func newOptions(opts []Option) options {
	o := options{
		ignore: func(string) bool { return false },
		log:    logrus.StandardLogger(),
		// The walk waits on the kernel more than it computes: a few
		// goroutines per core keep the cores busy.
		workers: 4 * runtime.GOMAXPROCS(0),
	}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Option configures a Snapshotter or FromOverlayUpper.
type Option func(*options)

// WithIgnore excludes the container paths ("/proc", "/kiln") for which ignore
// returns true, with everything below them: they are neither walked nor
// reported, so they never appear as added, changed or deleted. The walk
// calls ignore from several goroutines at once.
func WithIgnore(ignore func(p string) bool) Option {
	return func(o *options) {
		if ignore != nil {
			o.ignore = ignore
		}
	}
}

// WithLogger sets the logger for debug details.
func WithLogger(l logrus.FieldLogger) Option {
	return func(o *options) { o.log = l }
}

// WithWorkers bounds the directories walked at once (default: four per
// core).
func WithWorkers(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.workers = n
		}
	}
}
