package registry

import (
	"errors"
	"slices"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
)

func TestProgressLogRateLimited(t *testing.T) {
	log, hook := test.NewNullLogger()
	p := newProgressLog(log, `pushing "r.example/app:v1"`)
	// A clock that moves one second each time it is read: follow reads it
	// at the start (1s) and once per update (2s to 13s).
	clock := time.Unix(0, 0)
	p.now = func() time.Time { clock = clock.Add(time.Second); return clock }

	updates := make(chan v1.Update, 16)
	for i := int64(1); i <= 12; i++ {
		updates <- v1.Update{Complete: i << 20, Total: 12 << 20}
	}
	updates <- v1.Update{Error: errors.New("connection reset")}
	close(updates)
	last := p.follow(updates)

	if last.Complete != 12<<20 || last.Total != 12<<20 {
		t.Fatalf("last update %+v, want the final byte counts", last)
	}
	var lines []string
	for _, e := range hook.AllEntries() {
		if e.Level != logrus.InfoLevel {
			t.Fatalf("logged at %s: %q", e.Level, e.Message)
		}
		lines = append(lines, e.Message)
	}
	// Five seconds apart: at 6s (update 5) and 11s (update 10).
	want := []string{
		`pushing "r.example/app:v1": 5MiB of 12MiB`,
		`pushing "r.example/app:v1": 10MiB of 12MiB`,
	}
	if !slices.Equal(lines, want) {
		t.Fatalf("logged %q, want %q", lines, want)
	}
}
