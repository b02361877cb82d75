package progress

import (
	"fmt"
	"sync"
	"time"

	"github.com/docker/go-units"
	"github.com/sirupsen/logrus"
)

// Log renders transfers as log lines, for CI logs: for each transfer, a
// line with its percent, amount and rate at most once per Interval, and
// one when it ends. Steps are logged by their producers already.
type Log struct {
	log      logrus.FieldLogger
	interval time.Duration
	now      func() time.Time

	mu        sync.Mutex
	transfers map[string]*logged
}

type logged struct {
	start, last time.Time
}

// DefaultInterval is how often Log reports a running transfer.
const DefaultInterval = 5 * time.Second

// NewLog logs to log at info level.
func NewLog(log logrus.FieldLogger) *Log {
	return &Log{log: log, interval: DefaultInterval, now: time.Now, transfers: map[string]*logged{}}
}

func (l *Log) Event(e Event) {
	if e.Kind != Transfer {
		return
	}
	now := l.now()
	l.mu.Lock()
	t, ok := l.transfers[e.ID]
	if !ok {
		t = &logged{start: now, last: now}
		l.transfers[e.ID] = t
	}
	report := e.Done || now.Sub(t.last) >= l.interval
	if report {
		t.last = now
	}
	if e.Done {
		delete(l.transfers, e.ID)
	}
	l.mu.Unlock()
	if !report || (e.Done && now.Sub(t.start) < l.interval) {
		// A transfer that ended before its first report is said by its
		// producer's own line; a long one gets its last figures.
		return
	}
	l.log.Infof("%s: %s", e.Name, Figures(e.Current, e.Total, now.Sub(t.start)))
}

// Figures says how far a transfer is: "12.5MiB of 50MiB (25%), 4.2MiB/s,
// 9s left", as much as is known.
func Figures(current, total int64, elapsed time.Duration) string {
	s := Size(current)
	if total > 0 {
		s = fmt.Sprintf("%s of %s (%d%%)", Size(current), Size(total), current*100/total)
	}
	if elapsed > 0 && current > 0 {
		rate := float64(current) / elapsed.Seconds()
		s += fmt.Sprintf(", %s/s", Size(int64(rate)))
		if total > current && rate > 0 {
			left := time.Duration(float64(total-current) / rate * float64(time.Second))
			s += fmt.Sprintf(", %s left", left.Round(time.Second))
		}
	}
	return s
}

// Size formats a byte count: "12.5MiB".
func Size(n int64) string { return units.BytesSize(float64(n)) }
