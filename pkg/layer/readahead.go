package layer

import (
	"errors"
	"io"
	"sync"
)

var errReadAheadClosed = errors.New("read after Close")

// readAhead reads r in a goroutine of its own, up to readAheadBlocks
// blocks of readAheadBlockSize ahead of the consumer, so that producing
// the bytes (decompressing) and consuming them overlap.
type readAhead struct {
	full   chan []byte // blocks read, in order; closed after the last
	free   chan []byte // blocks the consumer is done with
	err    error       // why the reading stopped: set before full is closed
	block  []byte      // the block being consumed
	rest   []byte      // its unread part
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
	closed bool
}

func newReadAhead(r io.Reader) *readAhead {
	ra := &readAhead{
		full: make(chan []byte, readAheadBlocks),
		free: make(chan []byte, readAheadBlocks),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	for range readAheadBlocks {
		ra.free <- make([]byte, readAheadBlockSize)
	}
	go ra.fill(r)
	return ra
}

func (ra *readAhead) fill(r io.Reader) {
	defer close(ra.done)
	defer close(ra.full)
	for {
		var b []byte
		select {
		case b = <-ra.free:
		case <-ra.stop:
			return
		}
		// Not io.ReadFull: it would turn r's io.ErrUnexpectedEOF (a
		// truncated stream) into the io.EOF of a short last block.
		b = b[:cap(b)]
		n := 0
		var err error
		for n < len(b) && err == nil {
			var m int
			m, err = r.Read(b[n:])
			n += m
		}
		if n > 0 {
			select {
			case ra.full <- b[:n]:
			case <-ra.stop:
				return
			}
		}
		if err != nil {
			ra.err = err
			return
		}
	}
}

func (ra *readAhead) Read(p []byte) (int, error) {
	if ra.closed {
		return 0, errReadAheadClosed
	}
	if len(p) == 0 {
		return 0, nil
	}
	for len(ra.rest) == 0 {
		if ra.block != nil {
			ra.free <- ra.block
			ra.block = nil
		}
		b, ok := <-ra.full
		if !ok {
			if ra.err == nil {
				return 0, errReadAheadClosed
			}
			return 0, ra.err
		}
		ra.block, ra.rest = b, b
	}
	n := copy(p, ra.rest)
	ra.rest = ra.rest[n:]
	return n, nil
}

// Close stops the reading goroutine and waits for it: after Close, r is
// not read any more.
func (ra *readAhead) Close() error {
	ra.closed = true
	ra.once.Do(func() { close(ra.stop) })
	<-ra.done
	return nil
}
