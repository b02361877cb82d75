package registry

import (
	"io"
	"time"

	"github.com/docker/go-units"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/pkg/progress"
)

// transferProgress reports one transfer to the client's progress sink.
type transferProgress struct {
	sink progress.Sink
	id   string // unique per transfer
	name string // `pushing "host/repo"`
	push bool
}

func (c *Client) newTransfer(id, name string, push bool) *transferProgress {
	return &transferProgress{sink: c.progress, id: id, name: name, push: push}
}

// report says complete of total bytes have moved.
func (p *transferProgress) report(complete, total int64, done bool) {
	p.sink.Event(progress.Event{Kind: progress.Transfer, Time: time.Now(), ID: p.id, Name: p.name, Push: p.push,
		Current: complete, Total: total, Done: done})
}

// follow reads go-containerregistry's updates until the channel is closed
// and returns the last one, for the caller's completion line. Errors are
// skipped: the transfer returns them with more context.
func (p *transferProgress) follow(updates <-chan v1.Update) v1.Update {
	var last v1.Update
	for u := range updates {
		if u.Error != nil {
			continue
		}
		last = u
		p.report(u.Complete, u.Total, false)
	}
	p.report(last.Complete, last.Total, true)
	return last
}

// progressReader reports the progress of a download as it is read.
type progressReader struct {
	io.ReadCloser
	progress    *transferProgress
	read, total int64
	done        bool
}

func (r *progressReader) Read(b []byte) (int, error) {
	n, err := r.ReadCloser.Read(b)
	r.read += int64(n)
	if err == io.EOF && !r.done {
		r.done = true
		r.progress.report(r.read, r.total, true)
	} else if n > 0 {
		r.progress.report(r.read, r.total, false)
	}
	return n, err
}

func (r *progressReader) Close() error {
	if !r.done {
		r.done = true
		r.progress.report(r.read, r.total, true)
	}
	return r.ReadCloser.Close()
}

// byteSize formats n for logs: "12.5MiB".
func byteSize(n int64) string {
	return units.BytesSize(float64(n))
}
