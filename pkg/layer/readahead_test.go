package layer

import (
	"bytes"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"
)

func TestReadAheadContent(t *testing.T) {
	data := mixedPayload(3*readAheadBlockSize*readAheadBlocks/2+17, 15)
	for name, r := range map[string]io.Reader{
		"whole":  bytes.NewReader(data),
		"halves": iotest.HalfReader(bytes.NewReader(data)),
		"eof":    iotest.DataErrReader(bytes.NewReader(data)),
	} {
		ra := newReadAhead(r)
		if err := iotest.TestReader(ra, data); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		ra.Close()
	}
	ra := newReadAhead(bytes.NewReader(nil))
	if n, err := ra.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("empty: %d, %v", n, err)
	}
	ra.Close()
}

func TestReadAheadErrors(t *testing.T) {
	data := mixedPayload(readAheadBlockSize+5, 16)
	for _, want := range []error{errBroken, io.ErrUnexpectedEOF} {
		ra := newReadAhead(io.MultiReader(bytes.NewReader(data), iotest.ErrReader(want)))
		got, err := io.ReadAll(ra)
		if !bytes.Equal(got, data) || !errors.Is(err, want) {
			t.Errorf("%d bytes and %v, want %d bytes and %v", len(got), err, len(data), want)
		}
		ra.Close()
	}
}

// endless counts its reads and never ends.
type endless struct{ reads atomic.Int64 }

func (e *endless) Read(p []byte) (int, error) {
	e.reads.Add(1)
	return len(p), nil
}

func TestReadAheadCloseStopsReading(t *testing.T) {
	var r endless
	ra := newReadAhead(&r)
	if _, err := io.ReadFull(ra, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	ra.Close()
	after := r.reads.Load()
	time.Sleep(50 * time.Millisecond)
	if n := r.reads.Load(); n != after {
		t.Errorf("%d reads after Close", n-after)
	}
	// Read-ahead is bounded: the blocks, and nothing more.
	if after > readAheadBlocks+1 {
		t.Errorf("%d reads of %d-byte blocks before Close: more than the read-ahead", after, readAheadBlockSize)
	}
	if _, err := ra.Read(make([]byte, 10)); !errors.Is(err, errReadAheadClosed) {
		t.Errorf("Read after Close: %v", err)
	}
	ra.Close()
}
