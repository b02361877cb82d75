package buildcontext

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"time"
)

// download fetches the archive at rawURL (an http or https URL that is not
// a git repository) to a file of the work directory, then extracts it like
// a tar:// context: the compression is told from the content, not from the
// name or the Content-Type. The archive is streamed to disk, never held in
// memory, and removed once extracted.
func (c *Context) download(ctx context.Context, rawURL string, o options) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url's errors quote the URL, credentials included.
		return errors.New("invalid URL")
	}
	if u.Fragment != "" {
		return fmt.Errorf("a fragment (#%s) selects the ref of a git repository, whose URL ends in \".git\"; this URL is downloaded as a tar archive", u.Fragment)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return errors.New("invalid URL")
	}
	// Credentials in the URL are sent as basic authentication, and kept
	// out of the URL that errors quote.
	if u.User != nil {
		password, _ := u.User.Password()
		req.SetBasicAuth(u.User.Username(), password)
		u.User = nil
		req.URL = u
	}
	start := time.Now()
	o.log.Infof("Downloading the build context from %q", u)
	f, err := os.CreateTemp(o.workDir, "kiln-context-*.download")
	if err != nil {
		return fmt.Errorf("creating the download file: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	size, err := fetchTo(f, req)
	if err != nil {
		return err
	}
	o.log.Infof("Downloaded %d bytes in %s", size, time.Since(start).Round(time.Millisecond))
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	return c.extract(ctx, f, o)
}

// fetchTo writes the body of the response to req into w.
func fetchTo(w io.Writer, req *http.Request) (int64, error) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("the server answered %q", resp.Status)
	}
	// A page instead of an archive: most often a repository's web page
	// given without ".git", or a login page.
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "text/html" {
		return 0, errors.New("the server sent an HTML page, not an archive (a git repository's URL ends in \".git\")")
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("downloading: %w", err)
	}
	return n, nil
}
