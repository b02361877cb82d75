package executor

import (
	"bytes"
	"io"
	"strings"
	"sync"
)

// tailWriter passes a command's output on and keeps its last lines for the
// error message when the command fails.
type tailWriter struct {
	mu    sync.Mutex
	out   io.Writer
	max   int
	lines []string
	part  []byte
}

func newTail(out io.Writer, max int) *tailWriter {
	if out == nil {
		out = io.Discard
	}
	return &tailWriter{out: out, max: max}
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.part = append(t.part, p...)
	for {
		i := bytes.IndexByte(t.part, '\n')
		if i < 0 {
			break
		}
		t.keep(string(t.part[:i]))
		t.part = t.part[i+1:]
	}
	if _, err := t.out.Write(p); err != nil {
		// Output that cannot be shown must not fail the build.
		t.out = io.Discard
	}
	return len(p), nil
}

func (t *tailWriter) keep(line string) {
	t.lines = append(t.lines, strings.TrimRight(line, "\r"))
	if len(t.lines) > t.max {
		t.lines = t.lines[len(t.lines)-t.max:]
	}
}

// summary renders the kept lines for an error message.
func (t *tailWriter) summary() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := t.lines
	if len(t.part) > 0 {
		lines = append(lines, string(t.part))
	}
	if len(lines) == 0 {
		return ""
	}
	return "; last output:\n  " + strings.Join(lines, "\n  ")
}
