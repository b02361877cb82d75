package registry

import (
	"io"
	"time"

	"github.com/docker/go-units"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sirupsen/logrus"
)

// progressInterval is how often a running transfer reports its progress.
const progressInterval = 5 * time.Second

// progressLog logs a transfer's progress at info level, at most once per
// interval: go-containerregistry sends an update for every chunk read.
type progressLog struct {
	log      logrus.FieldLogger
	what     string // `pushing "host/repo:tag"`
	interval time.Duration
	now      func() time.Time
	logged   time.Time
}

func newProgressLog(log logrus.FieldLogger, what string) *progressLog {
	return &progressLog{log: log, what: what, interval: progressInterval, now: time.Now, logged: time.Now()}
}

// report logs complete of total when the interval has passed since the
// last line.
func (p *progressLog) report(complete, total int64) {
	if now := p.now(); now.Sub(p.logged) >= p.interval {
		p.log.Infof("%s: %s of %s", p.what, byteSize(complete), byteSize(total))
		p.logged = now
	}
}

// follow reads updates until the channel is closed and returns the last
// one, for the caller's completion line. Errors are skipped: the transfer
// returns them with more context.
func (p *progressLog) follow(updates <-chan v1.Update) v1.Update {
	var last v1.Update
	p.logged = p.now()
	for u := range updates {
		if u.Error != nil {
			continue
		}
		last = u
		p.report(u.Complete, u.Total)
	}
	return last
}

// progressReader reports the progress of a download as it is read.
type progressReader struct {
	io.ReadCloser
	progress    *progressLog
	read, total int64
}

func (r *progressReader) Read(b []byte) (int, error) {
	n, err := r.ReadCloser.Read(b)
	r.read += int64(n)
	r.progress.report(r.read, r.total)
	return n, err
}

// byteSize formats n for logs: "12.5MiB".
func byteSize(n int64) string {
	return units.BytesSize(float64(n))
}
