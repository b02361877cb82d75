package progress

import "time"

// Kind says what an Event reports.
type Kind string

const (
	StepStarted Kind = "step-started"
	StepDone    Kind = "step-done"
	// Transfer reports bytes moved by a pull or a push; Done marks its end.
	Transfer Kind = "transfer"
	// Pulled and Pushed name an image resolved for a build and one
	// written out: Name is the reference, Digest the manifest's.
	Pulled Kind = "pulled"
	Pushed Kind = "pushed"
)

// Event is one thing that happened.
type Event struct {
	Kind Kind      `json:"kind"`
	Time time.Time `json:"time"`

	// Steps.
	Stage       string        `json:"stage,omitempty"`
	Step        int           `json:"step,omitempty"`
	Steps       int           `json:"steps,omitempty"`
	Instruction string        `json:"instruction,omitempty"`
	Duration    time.Duration `json:"duration,omitempty"`
	Cached      bool          `json:"cached,omitempty"`
	Error       string        `json:"error,omitempty"`
	// Layer and LayerSize describe the layer a step made, if any.
	Layer     string `json:"layer,omitempty"`
	LayerSize int64  `json:"layer_size,omitempty"`

	// Transfers: ID is unique per transfer ("pull sha256:..."), Name says
	// what moves (`pulling layer sha256:1234...`).
	ID      string `json:"id,omitempty"`
	Name    string `json:"name,omitempty"`
	Push    bool   `json:"push,omitempty"`
	Current int64  `json:"current,omitempty"`
	Total   int64  `json:"total,omitempty"`
	Done    bool   `json:"done,omitempty"`

	// Digest is the manifest digest of a Pulled or Pushed image.
	Digest string `json:"digest,omitempty"`
}

// Sink receives events, from several goroutines at once.
type Sink interface {
	Event(Event)
}

// Discard drops every event.
var Discard Sink = discard{}

type discard struct{}

func (discard) Event(Event) {}

// Tee sends every event to each sink.
type Tee []Sink

func (t Tee) Event(e Event) {
	for _, s := range t {
		s.Event(e)
	}
}
