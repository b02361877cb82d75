package copier

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"time"

	"github.com/kiln-build/kiln/pkg/fsview"
)

// isURL reports whether an ADD source is a remote file.
func isURL(src string) bool {
	return strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://")
}

// checksum is a parsed ADD --checksum value.
type checksum struct {
	value string // as given: "sha256:..."
	algo  string
	hex   string
	new   func() hash.Hash
}

var checksumAlgos = map[string]func() hash.Hash{
	"sha256": sha256.New,
	"sha384": sha512.New384,
	"sha512": sha512.New,
}

func parseChecksum(s string) (*checksum, error) {
	algo, hx, _ := strings.Cut(s, ":")
	newHash, ok := checksumAlgos[algo]
	if !ok {
		return nil, fmt.Errorf("invalid --checksum %q: use sha256:, sha384: or sha512: followed by the hex digest", s)
	}
	if b, err := hex.DecodeString(hx); err != nil || len(b) != newHash().Size() {
		return nil, fmt.Errorf("invalid --checksum %q: not a %s hex digest", s, algo)
	}
	return &checksum{value: s, algo: algo, hex: strings.ToLower(hx), new: newHash}, nil
}

// download is a fetched URL, spooled to a temporary file so that its size is
// known and its checksum verified before anything reaches the layer.
type download struct {
	file    *os.File
	size    int64
	modTime time.Time
}

func (d *download) Close() error {
	d.file.Close()
	return os.Remove(d.file.Name())
}

// fetch downloads rawURL. The modification time comes from Last-Modified,
// else it is the time of the build, as Docker does.
func (c *copier) fetch(rawURL string) (*download, error) {
	req, err := http.NewRequestWithContext(c.ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, fmt.Errorf("fetching %q: %w", rawURL, err)
	}
	client := c.req.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching %q: %w", rawURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("fetching %q: server answered %s", rawURL, resp.Status)
	}
	f, err := os.CreateTemp("", "kiln-add-*")
	if err != nil {
		return nil, fmt.Errorf("fetching %q: %w", rawURL, err)
	}
	d := &download{file: f, modTime: c.now}
	w := io.Writer(f)
	var h hash.Hash
	if c.checksum != nil {
		h = c.checksum.new()
		w = io.MultiWriter(f, h)
	}
	if d.size, err = io.Copy(w, resp.Body); err != nil {
		d.Close()
		return nil, fmt.Errorf("fetching %q: %w", rawURL, err)
	}
	if h != nil {
		if got := hex.EncodeToString(h.Sum(nil)); got != c.checksum.hex {
			d.Close()
			return nil, fmt.Errorf("fetching %q: checksum mismatch: got %s:%s, want %s", rawURL, c.checksum.algo, got, c.checksum.value)
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		d.Close()
		return nil, fmt.Errorf("fetching %q: %w", rawURL, err)
	}
	if lm := resp.Header.Get("Last-Modified"); lm != "" {
		if t, err := http.ParseTime(lm); err == nil {
			d.modTime = t
		}
	}
	return d, nil
}

// urlFileName is the name a download gets in a destination directory: the
// last element of the URL path, empty when the URL has none.
func urlFileName(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("invalid URL %q: %w", rawURL, err)
	}
	if name := path.Base(u.Path); name != "." && name != "/" {
		return name, nil
	}
	return "", nil
}

// copyURL downloads rawURL to the destination: a file of mode 0600 (before
// --chmod) owned by root unless --chown.
func (c *copier) copyURL(rawURL string) (string, error) {
	name, err := urlFileName(rawURL)
	if err != nil {
		return "", err
	}
	if name == "" {
		inside, err := c.destIsDir()
		if err != nil {
			return "", err
		}
		if inside {
			return "", fmt.Errorf("cannot name the file downloaded from %q: the URL has no path, give a destination file name", rawURL)
		}
	}
	d, err := c.fetch(rawURL)
	if err != nil {
		return "", err
	}
	defer d.Close()
	target, err := c.fileTarget(name)
	if err != nil {
		return "", err
	}
	uid, gid := c.owner()
	e := &fsview.Entry{Mode: c.chmodOf(0o600), Size: d.size, UID: uid, GID: gid, ModTime: d.modTime}
	return target, c.putNonDir(target, e, d.file)
}
