package faultproxy

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fault is what a rule does to a request.
type Fault int

const (
	// Reset closes the connection with a TCP reset before answering.
	Reset Fault = iota
	// Status answers Rule.Status with a registry-style JSON error body
	// (and Retry-After for 429 and 503) instead of proxying.
	Status
	// Slow proxies the request and sends the response body in chunks of
	// SlowChunk bytes, SlowDelay apart.
	Slow
	// Truncate proxies the request, sends half of the response body and
	// breaks the connection.
	Truncate
)

func (f Fault) String() string {
	return [...]string{"reset", "status", "slow", "truncate"}[f]
}

// Slow bodies are sent SlowChunk bytes at a time, SlowDelay apart.
const (
	SlowChunk = 4 << 10
	SlowDelay = 2 * time.Millisecond
)

// Rule applies Fault to the requests it matches.
type Rule struct {
	Method       string // "" matches any
	PathContains string // "" matches any
	Fault        Fault
	Status       int // for Status
	// Times is how many matching requests get the fault; 0 is every one.
	Times int
}

func (r Rule) matches(req *http.Request) bool {
	return (r.Method == "" || r.Method == req.Method) && strings.Contains(req.URL.Path, r.PathContains)
}

// Option configures a Proxy.
type Option func(*Proxy)

// WithRule adds a rule; the first matching rule with faults left applies.
func WithRule(r Rule) Option {
	return func(p *Proxy) { p.rules = append(p.rules, &ruleState{Rule: r}) }
}

// WithRoute picks the upstream (an index) of each request; the default is
// round robin.
func WithRoute(route func(*http.Request) int) Option {
	return func(p *Proxy) { p.route = route }
}

// Proxy is a running fault-injecting proxy.
type Proxy struct {
	// Host is "127.0.0.1:PORT".
	Host string

	upstreams []*url.URL
	route     func(*http.Request) int
	proxy     *httputil.ReverseProxy

	mu       sync.Mutex
	rules    []*ruleState
	next     int
	injected []string
}

type ruleState struct {
	Rule
	applied int
}

// Start proxies to upstreams ("http://127.0.0.1:PORT") until the test
// ends.
func Start(t testing.TB, upstreams []string, opts ...Option) *Proxy {
	t.Helper()
	p := &Proxy{}
	for _, u := range upstreams {
		parsed, err := url.Parse(u)
		if err != nil {
			t.Fatalf("faultproxy: upstream %q: %v", u, err)
		}
		p.upstreams = append(p.upstreams, parsed)
	}
	for _, opt := range opts {
		opt(p)
	}
	if len(p.upstreams) == 0 {
		t.Fatal("faultproxy: no upstream")
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	p.proxy = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(p.upstreams[r.In.Context().Value(upstreamKey{}).(int)])
			r.Out.Host = r.In.Host
		},
		Transport:     transport,
		FlushInterval: -1, // slow bodies reach the client as they are sent
		ErrorLog:      log.New(io.Discard, "", 0),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("faultproxy: listening: %v", err)
	}
	p.Host = ln.Addr().String()
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close() // connections the faults left hanging are closed too
		<-done
		transport.CloseIdleConnections()
	})
	return p
}

// Ref returns "HOST/repoTag" for the proxy.
func (p *Proxy) Ref(repoTag string) string {
	return p.Host + "/" + repoTag
}

// Injected lists the faults injected so far, as "fault METHOD PATH".
func (p *Proxy) Injected() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.injected...)
}

type upstreamKey struct{}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rule, upstream := p.pick(r)
	r = r.WithContext(context.WithValue(r.Context(), upstreamKey{}, upstream))
	if rule == nil {
		p.proxy.ServeHTTP(w, r)
		return
	}
	switch rule.Fault {
	case Reset:
		reset(w)
	case Status:
		if rule.Status == http.StatusTooManyRequests || rule.Status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rule.Status)
		fmt.Fprintf(w, `{"errors":[{"code":"UNKNOWN","message":"faultproxy: injected %d"}]}`, rule.Status)
	case Slow, Truncate:
		p.proxyWithBody(w, r, rule.Fault)
	}
}

// pick returns the rule to apply to r, nil for none, and its upstream.
func (p *Proxy) pick(r *http.Request) (*Rule, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	upstream := 0
	if p.route != nil {
		upstream = p.route(r)
	} else {
		upstream = p.next % len(p.upstreams)
		p.next++
	}
	for _, rs := range p.rules {
		if rs.matches(r) && (rs.Times == 0 || rs.applied < rs.Times) {
			rs.applied++
			p.injected = append(p.injected, fmt.Sprintf("%s %s %s", rs.Fault, r.Method, r.URL.Path))
			rule := rs.Rule
			return &rule, upstream
		}
	}
	return nil, upstream
}

// proxyWithBody proxies r and sends the body slowly, or half of it.
func (p *Proxy) proxyWithBody(w http.ResponseWriter, r *http.Request, fault Fault) {
	rp := *p.proxy
	rp.ModifyResponse = func(resp *http.Response) error {
		if fault == Slow {
			resp.Body = &slowBody{ReadCloser: resp.Body}
			return nil
		}
		limit := resp.ContentLength / 2
		if resp.ContentLength < 0 {
			limit = 1
		}
		resp.Body = &truncatedBody{ReadCloser: resp.Body, left: limit}
		return nil
	}
	rp.ServeHTTP(w, r)
}

// reset closes the client's connection with an RST.
func reset(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		tcp.SetLinger(0)
	}
	conn.Close()
}

type slowBody struct{ io.ReadCloser }

func (b *slowBody) Read(p []byte) (int, error) {
	time.Sleep(SlowDelay)
	if len(p) > SlowChunk {
		p = p[:SlowChunk]
	}
	return b.ReadCloser.Read(p)
}

// truncatedBody fails after left bytes; httputil.ReverseProxy then aborts
// the response, which breaks the client's connection mid-body.
type truncatedBody struct {
	io.ReadCloser
	left int64
}

func (b *truncatedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, fmt.Errorf("faultproxy: body truncated")
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}
