package cache

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
)

// A layer's headers are kept in the cache so that a rebuild which runs a
// COPY on a large base (kaniko does not cache COPY by default) learns the
// base's tree without downloading and decompressing it. They are an entry
// like a step's, whose one blob is the headers as gzipped JSON, an object
// a line: a fifth the size of the same headers as a tar, and decoded in a
// fraction of the time.

// HeadersMediaType is the media type of a headers entry's blob.
const HeadersMediaType types.MediaType = "application/vnd.kiln.layer.headers.v1+json+gzip"

// MaxHeaders bounds the entries of a headers entry, so that a damaged or
// hostile cache cannot make a build hold more than a few hundred MB of
// them. A layer with more files is read instead, and never kept.
const MaxHeaders = 1 << 20

// maxHeaderLine bounds one encoded header (names, link targets and
// extended attributes included), and maxHeadersBytes a whole list
// decompressed: neither the count nor the lines alone bound the memory a
// list can take.
const maxHeaderLine = 1 << 20

var maxHeadersBytes int64 = 512 << 20

// header is a tar.Header as a headers entry stores it.
type header struct {
	Type     byte              `json:"t"`
	Name     string            `json:"n"`
	Linkname string            `json:"l,omitempty"`
	Mode     int64             `json:"m"`
	UID      int               `json:"u,omitempty"`
	GID      int               `json:"g,omitempty"`
	Uname    string            `json:"un,omitempty"`
	Gname    string            `json:"gn,omitempty"`
	Size     int64             `json:"s,omitempty"`
	ModTime  *int64            `json:"mt,omitempty"` // Unix nanoseconds; absent: the zero time
	Devmajor int64             `json:"dj,omitempty"`
	Devminor int64             `json:"dn,omitempty"`
	PAX      map[string]string `json:"x,omitempty"`
}

// HeadersKey is the key of the headers of the layer whose uncompressed
// digest is diffID.
func HeadersKey(diffID v1.Hash) string {
	return NewKey("LAYER-HEADERS").String("diffid", diffID.String()).Sum()
}

// HeadersLayer encodes tar headers as the blob of a headers entry.
func HeadersLayer(headers []*tar.Header) (v1.Layer, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	enc := json.NewEncoder(zw)
	for _, h := range headers {
		e := header{Type: h.Typeflag, Name: h.Name, Linkname: h.Linkname, Mode: h.Mode, UID: h.Uid, GID: h.Gid,
			Uname: h.Uname, Gname: h.Gname, Size: h.Size, Devmajor: h.Devmajor, Devminor: h.Devminor, PAX: h.PAXRecords}
		if !h.ModTime.IsZero() {
			ns := h.ModTime.UnixNano()
			e.ModTime = &ns
		}
		if err := enc.Encode(&e); err != nil {
			return nil, fmt.Errorf("encoding the header of %q: %w", h.Name, err)
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return static.NewLayer(buf.Bytes(), HeadersMediaType), nil
}

// ReadHeaders decodes the blob of a headers entry. Anything else is
// ErrCorrupt.
func ReadHeaders(l v1.Layer) ([]*tar.Header, error) {
	if mt, err := l.MediaType(); err != nil || mt != HeadersMediaType {
		return nil, corrupt("headers: media type %q", mt)
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, corrupt("headers: %v", err)
	}
	defer rc.Close()
	zr, err := gzip.NewReader(rc)
	if err != nil {
		return nil, corrupt("headers: %v", err)
	}
	defer zr.Close()
	limited := &io.LimitedReader{R: zr, N: maxHeadersBytes + 1}
	sc := bufio.NewScanner(limited)
	sc.Buffer(make([]byte, 64<<10), maxHeaderLine)
	var headers []*tar.Header
	for sc.Scan() {
		if len(headers) == MaxHeaders {
			return nil, corrupt("headers: more than %d entries", MaxHeaders)
		}
		var e header
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, corrupt("headers: entry %d: %v", len(headers)+1, err)
		}
		if e.Name == "" || e.Size < 0 {
			return nil, corrupt("headers: entry %d has no name or a negative size", len(headers)+1)
		}
		h := &tar.Header{Typeflag: e.Type, Name: e.Name, Linkname: e.Linkname, Mode: e.Mode, Uid: e.UID, Gid: e.GID,
			Uname: e.Uname, Gname: e.Gname, Size: e.Size, Devmajor: e.Devmajor, Devminor: e.Devminor, PAXRecords: e.PAX}
		if e.ModTime != nil {
			h.ModTime = time.Unix(0, *e.ModTime)
		}
		headers = append(headers, h)
	}
	if err := sc.Err(); err != nil {
		return nil, corrupt("headers: %v", err)
	}
	if limited.N <= 0 {
		return nil, corrupt("headers: more than %d bytes", maxHeadersBytes)
	}
	return headers, nil
}
