package registry

import (
	"errors"
	"io"
	"slices"
	"strings"
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

func TestProgressReaderReportsDownloads(t *testing.T) {
	log, hook := test.NewNullLogger()
	p := newProgressLog(log, "pulling layer sha256:abc")
	clock := time.Unix(0, 0)
	p.now = func() time.Time { clock = clock.Add(3 * time.Second); return clock }
	p.logged = clock
	data := strings.Repeat("x", 4<<20)
	r := &progressReader{ReadCloser: io.NopCloser(strings.NewReader(data)), progress: p, total: int64(len(data))}
	buf := make([]byte, 1<<20)
	for {
		if _, err := r.Read(buf); err == io.EOF {
			break
		}
	}
	// Reads at 3s, 6s, 9s, 12s, 15s: a line when 5s have passed since the last.
	var lines []string
	for _, e := range hook.AllEntries() {
		lines = append(lines, e.Message)
	}
	want := []string{"pulling layer sha256:abc: 2MiB of 4MiB", "pulling layer sha256:abc: 4MiB of 4MiB"}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}
