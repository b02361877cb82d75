package progress

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus/hooks/test"
)

func TestFigures(t *testing.T) {
	for _, c := range []struct {
		cur, total int64
		took       time.Duration
		want       string
	}{
		{5 << 20, 20 << 20, 5 * time.Second, "5MiB of 20MiB (25%), 1MiB/s, 15s left"},
		{20 << 20, 20 << 20, 2 * time.Second, "20MiB of 20MiB (100%), 10MiB/s"},
		{3 << 20, 0, time.Second, "3MiB, 3MiB/s"},
		{0, 10, 0, "0B of 10B (0%)"},
	} {
		if got := Figures(c.cur, c.total, c.took); got != c.want {
			t.Errorf("Figures(%d, %d, %s) = %q, want %q", c.cur, c.total, c.took, got, c.want)
		}
	}
}

func TestLogRateLimited(t *testing.T) {
	log, hook := test.NewNullLogger()
	l := NewLog(log)
	clock := time.Unix(0, 0)
	l.now = func() time.Time { return clock }
	for i := int64(1); i <= 12; i++ {
		clock = clock.Add(time.Second)
		l.Event(Event{Kind: Transfer, ID: "a", Name: "pulling layer a", Current: i << 20, Total: 12 << 20, Done: i == 12})
	}
	// A quick transfer says nothing: its producer logs its end.
	l.Event(Event{Kind: Transfer, ID: "b", Name: "pulling layer b", Current: 1, Total: 1})
	l.Event(Event{Kind: Transfer, ID: "b", Name: "pulling layer b", Current: 1, Total: 1, Done: true})
	var lines []string
	for _, e := range hook.AllEntries() {
		lines = append(lines, e.Message)
	}
	// Started at 1s: lines at 6s and 11s, and the end at 12s.
	want := []string{
		"pulling layer a: 6MiB of 12MiB (50%), 1.2MiB/s, 5s left",
		"pulling layer a: 11MiB of 12MiB (91%), 1.1MiB/s, 1s left",
		"pulling layer a: 12MiB of 12MiB (100%), 1.091MiB/s",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

func TestTTY(t *testing.T) {
	var out bytes.Buffer
	tty := NewTTY(&out, 100)
	clock := time.Unix(100, 0)
	tty.mu.Lock()
	tty.now = func() time.Time { return clock }
	tty.mu.Unlock()
	tty.Event(Event{Kind: StepStarted, Stage: "build", Step: 3, Steps: 5, Instruction: "RUN make"})
	clock = clock.Add(2 * time.Second)
	tty.Event(Event{Kind: Transfer, ID: "p", Name: "pulling layer sha256:ab", Current: 5 << 20, Total: 10 << 20})
	screen := out.String()
	for _, want := range []string{"=> [build 3/5] RUN make 2s", "pulling layer sha256:ab [==========          ]", "5MiB of 10MiB (50%)"} {
		if !strings.Contains(screen, want) {
			t.Errorf("view lacks %q:\n%q", want, screen)
		}
	}
	// A log line goes above the view, which is redrawn under it.
	out.Reset()
	tty.Writer().Write([]byte("level=info msg=hello\n"))
	if got := out.String(); !strings.HasPrefix(got, "\x1b[2A\r\x1b[J") || !strings.Contains(got, "msg=hello\n=> [build 3/5]") {
		t.Errorf("log write: %q", got)
	}
	tty.Event(Event{Kind: StepDone, Stage: "build", Step: 3})
	tty.Event(Event{Kind: Transfer, ID: "p", Done: true})
	out.Reset()
	tty.Close()
	if out.String() != "" {
		t.Errorf("Close left: %q", out.String())
	}
	if tty.drawn != 0 {
		t.Errorf("%d lines still drawn", tty.drawn)
	}
}

func TestJSON(t *testing.T) {
	var out bytes.Buffer
	j := NewJSON(&out)
	j.Event(Event{Kind: StepDone, Stage: "0", Step: 1, Steps: 2, Instruction: "RUN x", Duration: time.Second, Cached: true})
	j.Event(Event{Kind: Pushed, Name: "r/app:1", Digest: "sha256:1"})
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%q", out.String())
	}
	var e Event
	if err := json.Unmarshal([]byte(lines[0]), &e); err != nil || e.Kind != StepDone || !e.Cached || e.Duration != time.Second {
		t.Errorf("%s: %+v, %v", lines[0], e, err)
	}
}
