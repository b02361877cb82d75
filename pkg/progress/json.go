package progress

import (
	"encoding/json"
	"io"
	"sync"
)

// JSON writes each event as one line of JSON.
type JSON struct {
	mu  sync.Mutex
	enc *json.Encoder
}

// NewJSON writes to w.
func NewJSON(w io.Writer) *JSON { return &JSON{enc: json.NewEncoder(w)} }

func (j *JSON) Event(e Event) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.enc.Encode(e)
}
