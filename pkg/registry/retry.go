package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/sirupsen/logrus"
)

// DefaultRetries is how many times a failed registry request is retried
// unless WithPullRetries or WithPushRetries say otherwise.
const DefaultRetries = 2

// retryStatusCodes are the answers retried: timeouts, rate limits and
// server errors.
var retryStatusCodes = []int{
	http.StatusRequestTimeout,
	http.StatusTooManyRequests,
	http.StatusInternalServerError,
	http.StatusBadGateway,
	http.StatusServiceUnavailable,
	http.StatusGatewayTimeout,
}

// backoff is go-containerregistry's retry schedule for direction d: it
// retries requests answered 408, 429 or 5xx and failed uploads, after
// retryDelay, then twice as long each time.
func (c *Client) backoff(d direction) remote.Backoff {
	retries := c.pullRetries
	if d == push {
		retries = c.pushRetries
	}
	return remote.Backoff{Duration: c.retryDelay, Factor: 2, Jitter: 0.1, Steps: retries + 1}
}

// retryable is the retry predicate: transient failures are retried, and
// each retry is logged, as a build that slows down should say why.
func (c *Client) retryable(err error) bool {
	if err == nil || !isTransient(err) {
		return false
	}
	c.log.Warnf("Registry request failed, retrying: %s", redactedError(err))
	return true
}

// isTransient reports whether err may go away on a retry: an answer
// go-containerregistry marks temporary (408, 429, 5xx, UNAVAILABLE) or a
// broken connection.
func isTransient(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var t interface{ Temporary() bool }
	if errors.As(err, &t) && t.Temporary() {
		return true
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

// retryBroken runs f again, with backoff, while it fails on a broken
// connection: go-containerregistry retries each request, but not reading
// an answer's body (a pulled image's config, for one). Answers the
// registry gave were retried already, and are not retried again.
func (c *Client) retryBroken(ctx context.Context, d direction, f func() error) error {
	steps := c.backoff(d).Steps
	for attempt := 0; ; attempt++ {
		err := f()
		var terr *transport.Error
		if err == nil || attempt+1 >= steps || ctx.Err() != nil || errors.As(err, &terr) || !c.retryable(err) {
			return err
		}
		time.Sleep(c.retryDelay << attempt)
	}
}

// resumingLayer is a pulled layer whose interrupted download is opened
// again and fast-forwarded to where it broke: go-containerregistry retries
// requests, but not the reading of a response body, which is most of a
// layer's download. The content is still verified against the digest at
// the end of the stream.
type resumingLayer struct {
	v1.Layer
	retries int
	delay   time.Duration
	log     logrus.FieldLogger
}

func (l *resumingLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	return &resumingReader{layer: l, rc: rc}, nil
}

// Uncompressed decompresses Compressed, so that it resumes too.
func (l *resumingLayer) Uncompressed() (io.ReadCloser, error) {
	ul, err := partial.CompressedToLayer(l)
	if err != nil {
		return nil, err
	}
	return ul.Uncompressed()
}

// Descriptor keeps the manifest's descriptor (URLs, annotations).
func (l *resumingLayer) Descriptor() (*v1.Descriptor, error) {
	return partial.Descriptor(l.Layer)
}

type resumingReader struct {
	layer    *resumingLayer
	rc       io.ReadCloser
	read     int64
	attempts int
}

func (r *resumingReader) Read(p []byte) (int, error) {
	for {
		n, err := r.rc.Read(p)
		r.read += int64(n)
		if err == nil || err == io.EOF || !isTransient(err) {
			return n, err
		}
		if rerr := r.resume(err); rerr != nil {
			return n, rerr
		}
		if n > 0 {
			return n, nil
		}
	}
}

// resume replaces the broken stream by a new one advanced to where the old
// one stopped, retrying with backoff.
func (r *resumingReader) resume(cause error) error {
	l := r.layer
	digest, _ := l.Digest()
	for {
		if r.attempts >= l.retries {
			return fmt.Errorf("layer %s: download interrupted after %s, on every retry: %w", digest, byteSize(r.read), cause)
		}
		delay := l.delay << r.attempts
		r.attempts++
		l.log.Warnf("Layer %s: download interrupted after %s (%s); resuming in %s (retry %d of %d)",
			digest, byteSize(r.read), redactedError(cause), delay, r.attempts, l.retries)
		time.Sleep(delay)
		r.rc.Close()
		rc, err := l.Layer.Compressed()
		if err == nil {
			if _, err = io.CopyN(io.Discard, rc, r.read); err == nil {
				r.rc = rc
				return nil
			}
			rc.Close()
		}
		if !isTransient(err) {
			return fmt.Errorf("layer %s: resuming the download: %w", digest, err)
		}
		cause = err
	}
}

func (r *resumingReader) Close() error {
	return r.rc.Close()
}
