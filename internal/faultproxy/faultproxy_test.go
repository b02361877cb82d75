package faultproxy

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// upstream answers every request with its name, the Host it was sent and a
// body of size bytes.
func upstream(t *testing.T, name string, size int) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Upstream", name)
		w.Header().Set("X-Host", r.Host)
		w.Header().Set("Content-Length", fmt.Sprint(size))
		io.WriteString(w, strings.Repeat("x", size))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, p *Proxy, path string) (*http.Response, []byte, error) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + p.Host + path)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func TestFaults(t *testing.T) {
	const size = 64 << 10
	up := upstream(t, "a", size)
	p := Start(t, []string{up.URL},
		WithRule(Rule{PathContains: "/reset", Fault: Reset, Times: 1}),
		WithRule(Rule{PathContains: "/limited", Fault: Status, Status: http.StatusTooManyRequests}),
		WithRule(Rule{Method: http.MethodGet, PathContains: "/slow", Fault: Slow}),
		WithRule(Rule{PathContains: "/cut", Fault: Truncate}))

	if _, _, err := get(t, p, "/reset"); err == nil {
		t.Fatal("the reset request succeeded")
	}
	if resp, body, err := get(t, p, "/reset"); err != nil || resp.StatusCode != http.StatusOK || len(body) != size {
		t.Fatalf("after its one fault: %v %v %d bytes", resp, err, len(body))
	}
	resp, _, err := get(t, p, "/limited")
	if err != nil || resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("rate limited: %v %v", resp, err)
	}
	resp, body, err := get(t, p, "/slow")
	if err != nil {
		t.Fatal(err)
	}
	if len(body) != size || resp.Header.Get("X-Host") != p.Host {
		t.Fatalf("slow: %d bytes, upstream saw Host %q", len(body), resp.Header.Get("X-Host"))
	}
	_, body, err = get(t, p, "/cut")
	if !errors.Is(err, io.ErrUnexpectedEOF) || len(body) >= size {
		t.Fatalf("truncated: %v after %d bytes", err, len(body))
	}
	want := []string{"reset GET /reset", "status GET /limited", "slow GET /slow", "truncate GET /cut"}
	if got := p.Injected(); strings.Join(got, ";") != strings.Join(want, ";") {
		t.Fatalf("injected %q, want %q", got, want)
	}
}

func TestRoutes(t *testing.T) {
	a, b := upstream(t, "a", 1), upstream(t, "b", 1)
	roundRobin := Start(t, []string{a.URL, b.URL})
	var seen []string
	for range 4 {
		resp, _, err := get(t, roundRobin, "/")
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, resp.Header.Get("X-Upstream"))
	}
	if strings.Join(seen, "") != "abab" {
		t.Fatalf("round robin went to %q", seen)
	}

	byPath := Start(t, []string{a.URL, b.URL}, WithRoute(func(r *http.Request) int {
		if strings.HasPrefix(r.URL.Path, "/b") {
			return 1
		}
		return 0
	}))
	for path, want := range map[string]string{"/a": "a", "/b": "b", "/b/x": "b"} {
		resp, _, err := get(t, byPath, path)
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Header.Get("X-Upstream"); got != want {
			t.Fatalf("%s went to %s, want %s", path, got, want)
		}
	}
}
