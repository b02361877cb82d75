package registry

import (
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/pkg/progress"
)

// recorder is a progress sink that keeps the events.
type recorder struct {
	mu     sync.Mutex
	events []progress.Event
}

func (r *recorder) Event(e progress.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func TestTransferProgressFollowsUpdates(t *testing.T) {
	rec := &recorder{}
	p := &transferProgress{sink: rec, id: "push x", name: `pushing "r.example/app"`, push: true}
	updates := make(chan v1.Update, 16)
	for i := int64(1); i <= 3; i++ {
		updates <- v1.Update{Complete: i << 20, Total: 3 << 20}
	}
	updates <- v1.Update{Error: errors.New("connection reset")}
	close(updates)
	if last := p.follow(updates); last.Complete != 3<<20 {
		t.Fatalf("last update %+v", last)
	}
	if len(rec.events) != 4 {
		t.Fatalf("%d events: %+v", len(rec.events), rec.events)
	}
	end := rec.events[3]
	if !end.Done || end.Current != 3<<20 || end.Total != 3<<20 || !end.Push || end.Kind != progress.Transfer || end.Name != `pushing "r.example/app"` {
		t.Errorf("last event %+v", end)
	}
}

func TestProgressReaderReportsDownloads(t *testing.T) {
	rec := &recorder{}
	data := strings.Repeat("x", 4<<20)
	r := &progressReader{ReadCloser: io.NopCloser(strings.NewReader(data)),
		progress: &transferProgress{sink: rec, id: "pull l", name: "pulling layer l"}, total: int64(len(data))}
	buf := make([]byte, 1<<20)
	for {
		if _, err := r.Read(buf); err == io.EOF {
			break
		}
	}
	r.Close()
	var done int
	for _, e := range rec.events {
		if e.Done {
			done++
			if e.Current != 4<<20 {
				t.Errorf("done at %d bytes", e.Current)
			}
		}
	}
	if done != 1 || len(rec.events) < 4 {
		t.Errorf("events %+v", rec.events)
	}
}
