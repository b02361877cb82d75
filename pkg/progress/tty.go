package progress

import (
	"bytes"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
)

// TTY keeps a live view at the bottom of a terminal — each running step
// with its time so far, each transfer with a bar, percent, rate and time
// left — redrawn as events come and at least every Tick. Log lines
// written through Writer scroll above it.
type TTY struct {
	out   io.Writer
	width int
	now   func() time.Time

	mu        sync.Mutex
	steps     map[string]Event // running, by stage and step
	started   map[string]time.Time
	transfers map[string]*transfer
	drawn     int // lines of the view on the screen
	lastDraw  time.Time
	stop      chan struct{}
	done      chan struct{}
}

type transfer struct {
	e     Event
	start time.Time
}

// Tick is how often the view is redrawn when nothing happens.
const Tick = 200 * time.Millisecond

// NewTTY draws on out, a terminal width columns wide.
func NewTTY(out io.Writer, width int) *TTY {
	if width < 40 {
		width = 80
	}
	t := &TTY{out: out, width: width, now: time.Now, steps: map[string]Event{}, started: map[string]time.Time{},
		transfers: map[string]*transfer{}, stop: make(chan struct{}), done: make(chan struct{})}
	go t.tick()
	return t
}

func (t *TTY) tick() {
	defer close(t.done)
	tk := time.NewTicker(Tick)
	defer tk.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tk.C:
			t.mu.Lock()
			if len(t.steps)+len(t.transfers) > 0 {
				t.redraw()
			}
			t.mu.Unlock()
		}
	}
}

func stepKey(e Event) string { return fmt.Sprintf("%s\x00%d", e.Stage, e.Step) }

func (t *TTY) Event(e Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch e.Kind {
	case StepStarted:
		t.steps[stepKey(e)] = e
		t.started[stepKey(e)] = t.now()
	case StepDone:
		delete(t.steps, stepKey(e))
		delete(t.started, stepKey(e))
	case Transfer:
		if e.Done {
			delete(t.transfers, e.ID)
			break
		}
		tr, ok := t.transfers[e.ID]
		if !ok {
			tr = &transfer{start: t.now()}
			t.transfers[e.ID] = tr
		}
		tr.e = e
		// Bytes arrive in small chunks: redraw at most every 50ms.
		if t.now().Sub(t.lastDraw) < 50*time.Millisecond {
			return
		}
	default:
		return
	}
	t.redraw()
}

// Writer is where log lines go: each write clears the view, prints the
// text and draws the view again under it.
func (t *TTY) Writer() io.Writer { return ttyWriter{t} }

type ttyWriter struct{ t *TTY }

func (w ttyWriter) Write(p []byte) (int, error) {
	t := w.t
	t.mu.Lock()
	defer t.mu.Unlock()
	var buf bytes.Buffer
	t.clear(&buf)
	buf.Write(p)
	t.draw(&buf)
	_, err := t.out.Write(buf.Bytes())
	return len(p), err
}

// Close removes the view, leaving the log.
func (t *TTY) Close() error {
	close(t.stop)
	<-t.done
	t.mu.Lock()
	defer t.mu.Unlock()
	var buf bytes.Buffer
	t.clear(&buf)
	_, err := t.out.Write(buf.Bytes())
	return err
}

func (t *TTY) redraw() {
	var buf bytes.Buffer
	t.clear(&buf)
	t.draw(&buf)
	t.out.Write(buf.Bytes())
	t.lastDraw = t.now()
}

// clear moves to the view's first line and erases to the end of the
// screen.
func (t *TTY) clear(buf *bytes.Buffer) {
	if t.drawn > 0 {
		fmt.Fprintf(buf, "\x1b[%dA\r\x1b[J", t.drawn)
	}
	t.drawn = 0
}

func (t *TTY) draw(buf *bytes.Buffer) {
	for _, l := range t.view() {
		buf.WriteString(l)
		buf.WriteByte('\n')
		t.drawn++
	}
}

// view is the lines of the live view: steps, then transfers, oldest first.
func (t *TTY) view() []string {
	now := t.now()
	var lines []string
	keys := make([]string, 0, len(t.steps))
	for k := range t.steps {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return t.started[keys[i]].Before(t.started[keys[j]]) })
	for _, k := range keys {
		e := t.steps[k]
		took := now.Sub(t.started[k]).Round(100 * time.Millisecond)
		lines = append(lines, t.fit(fmt.Sprintf("=> [%s %d/%d] %s", e.Stage, e.Step, e.Steps, e.Instruction), fmt.Sprintf(" %s", took)))
	}
	ids := make([]string, 0, len(t.transfers))
	for id := range t.transfers {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return t.transfers[ids[i]].start.Before(t.transfers[ids[j]].start) })
	for _, id := range ids {
		tr := t.transfers[id]
		figures := Figures(tr.e.Current, tr.e.Total, now.Sub(tr.start))
		lines = append(lines, t.fit("   "+tr.e.Name+" "+bar(tr.e.Current, tr.e.Total, 20), " "+figures))
	}
	return lines
}

// fit cuts text so that text+tail fits the width.
func (t *TTY) fit(text, tail string) string {
	room := t.width - len([]rune(tail)) - 1
	if r := []rune(text); len(r) > room && room > 3 {
		text = string(r[:room-3]) + "..."
	}
	return text + tail
}

// bar draws current of total in width cells.
func bar(current, total int64, width int) string {
	if total <= 0 {
		return "[" + strings.Repeat("?", width) + "]"
	}
	filled := int(current * int64(width) / total)
	filled = min(max(filled, 0), width)
	return "[" + strings.Repeat("=", filled) + strings.Repeat(" ", width-filled) + "]"
}
