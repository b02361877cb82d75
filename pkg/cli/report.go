package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/term"

	"github.com/kiln-build/kiln/pkg/logging"
	"github.com/kiln-build/kiln/pkg/progress"
)

// Progress modes (--progress), as buildctl's.
const (
	progressAuto  = "auto"
	progressTTY   = "tty"
	progressPlain = "plain"
	progressJSON  = "json"
)

// progressOutput is where a build's progress goes: a renderer for the
// reader, and the report collected for the summary and --report-file.
type progressOutput struct {
	sink   progress.Sink
	report *buildReport
	close  func()
}

// newProgressOutput sets up --progress: tty draws a live view on a
// terminal with the log scrolling above it, plain writes progress lines
// into the log, json writes one event per line on stderr (and the log as
// JSON). auto is tty on a terminal, plain otherwise.
func newProgressOutput(mode string, g *globalFlags, log *logrus.Logger) (*progressOutput, error) {
	o := &progressOutput{report: newBuildReport(), close: func() {}}
	fd := int(os.Stderr.Fd())
	switch mode {
	case progressAuto:
		mode = progressPlain
		if term.IsTerminal(fd) && g.logFormat != logging.FormatJSON {
			mode = progressTTY
		}
	case progressTTY:
		if !term.IsTerminal(fd) {
			return nil, fmt.Errorf("--progress=tty: standard error is not a terminal (use plain or json)")
		}
	case progressPlain, progressJSON:
	default:
		return nil, fmt.Errorf("invalid --progress %q: use auto, tty, plain or json", mode)
	}
	var view progress.Sink
	switch mode {
	case progressTTY:
		width, _, err := term.GetSize(fd)
		if err != nil {
			width = 80
		}
		tty := progress.NewTTY(os.Stderr, width)
		log.SetOutput(tty.Writer())
		view = tty
		o.close = func() {
			tty.Close()
			log.SetOutput(os.Stderr)
		}
	case progressJSON:
		if err := logging.Configure(log, os.Stderr, g.verbosity, logging.FormatJSON, g.logTimestamp); err != nil {
			return nil, err
		}
		view = progress.NewJSON(os.Stderr)
	default:
		view = progress.NewLog(log)
	}
	o.sink = progress.Tee{view, o.report}
	return o, nil
}

// buildReport collects what a build did, for the summary at its end and
// --report-file.
type buildReport struct {
	mu         sync.Mutex
	started    time.Time
	steps      []progress.Event
	pulled     []reportImage
	pushed     []reportImage
	downloaded int64
	uploaded   int64
	transfers  map[string]int64 // bytes so far, by transfer
	cache      bool
}

type reportImage struct {
	Ref    string `json:"ref"`
	Digest string `json:"digest"`
}

func newBuildReport() *buildReport {
	return &buildReport{started: time.Now(), transfers: map[string]int64{}}
}

func (r *buildReport) Event(e progress.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch e.Kind {
	case progress.StepDone:
		r.steps = append(r.steps, e)
	case progress.Pulled:
		r.pulled = append(r.pulled, reportImage{Ref: e.Name, Digest: e.Digest})
	case progress.Pushed:
		r.pushed = append(r.pushed, reportImage{Ref: e.Name, Digest: e.Digest})
	case progress.Transfer:
		if !e.Done {
			r.transfers[e.ID] = e.Current
			return
		}
		delete(r.transfers, e.ID)
		if e.Push {
			r.uploaded += e.Current
		} else {
			r.downloaded += e.Current
		}
	}
}

// sortedSteps are the steps by stage and number.
func (r *buildReport) sortedSteps() []progress.Event {
	steps := append([]progress.Event(nil), r.steps...)
	sort.SliceStable(steps, func(i, j int) bool {
		if steps[i].Stage != steps[j].Stage {
			return steps[i].Time.Before(steps[j].Time)
		}
		return steps[i].Step < steps[j].Step
	})
	return steps
}

// summary is the table logged at the end of a build: each step that made
// (or could make) a layer, its time, its layer's size; the pushed digests.
func (r *buildReport) summary(image string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	lines := []string{fmt.Sprintf("Summary of the build of %s (%s):", image, time.Since(r.started).Round(10*time.Millisecond))}
	for _, s := range r.sortedSteps() {
		size, note := "-", ""
		if s.Layer != "" {
			size = progress.Size(s.LayerSize)
		}
		if s.Cached {
			note = " (cached)"
		}
		lines = append(lines, fmt.Sprintf("  [%s %d/%d] %-50s %8s %10s%s", s.Stage, s.Step, s.Steps, truncate(s.Instruction, 50),
			roundTime(s.Duration), size, note))
	}
	for _, p := range r.pushed {
		lines = append(lines, fmt.Sprintf("  pushed %s@%s", p.Ref, p.Digest))
	}
	return lines
}

func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-3]) + "..."
	}
	return s
}

func roundTime(d time.Duration) string {
	if d > time.Second {
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(time.Millisecond).String()
}

// reportFile is the JSON of --report-file.
type reportFile struct {
	Image      string        `json:"image"`
	Started    time.Time     `json:"started"`
	DurationMS int64         `json:"duration_ms"`
	Steps      []reportStep  `json:"steps"`
	Pulled     []reportImage `json:"pulled"`
	Pushed     []reportImage `json:"pushed"`
	Downloaded int64         `json:"bytes_downloaded"`
	Uploaded   int64         `json:"bytes_uploaded"`
	Cache      *reportCache  `json:"cache,omitempty"`
}

type reportStep struct {
	Stage       string `json:"stage"`
	Step        int    `json:"step"`
	Steps       int    `json:"steps"`
	Instruction string `json:"instruction"`
	DurationMS  int64  `json:"duration_ms"`
	// Cached is set with --cache: served from the cache or run.
	Cached    *bool  `json:"cached,omitempty"`
	Layer     string `json:"layer,omitempty"`
	LayerSize int64  `json:"layer_size,omitempty"`
	Error     string `json:"error,omitempty"`
}

type reportCache struct {
	Hits   int `json:"hits"`
	Misses int `json:"misses"`
}

// write writes the report to path, whole or not at all.
func (r *buildReport) write(path, image string) error {
	r.mu.Lock()
	f := reportFile{Image: image, Started: r.started, DurationMS: time.Since(r.started).Milliseconds(),
		Pulled: r.pulled, Pushed: r.pushed, Downloaded: r.downloaded, Uploaded: r.uploaded, Steps: []reportStep{}}
	if r.cache {
		f.Cache = &reportCache{}
	}
	for _, s := range r.sortedSteps() {
		rs := reportStep{Stage: s.Stage, Step: s.Step, Steps: s.Steps, Instruction: s.Instruction,
			DurationMS: s.Duration.Milliseconds(), Layer: s.Layer, LayerSize: s.LayerSize, Error: s.Error}
		if r.cache {
			cached := s.Cached
			rs.Cached = &cached
			if cached {
				f.Cache.Hits++
			} else {
				f.Cache.Misses++
			}
		}
		f.Steps = append(f.Steps, rs)
	}
	r.mu.Unlock()
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".report-")
	if err != nil {
		return fmt.Errorf("--report-file %q: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err = tmp.Write(append(data, '\n')); err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("--report-file %q: %w", path, err)
	}
	return nil
}
