package difftest

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
)

// Proto is the protocol a server speaks to its client.
type Proto string

// The protocols a script is run over.
const (
	HTTP1 Proto = "http1"
	HTTP2 Proto = "h2"  // HTTP/2 over TLS
	H2C   Proto = "h2c" // HTTP/2 over cleartext, prior knowledge
)

// Protos lists every protocol.
var Protos = []Proto{HTTP1, HTTP2, H2C}

// Start starts a real net/http server for h speaking p, closed when tb ends, and returns its URL and a
// client for it (redirects are not followed; the response is observed as it is).
func Start(tb testing.TB, p Proto, h http.Handler) (url string, client *http.Client) {
	tb.Helper()
	s := httptest.NewUnstartedServer(h)
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // scripted panics and hijacks log; nobody reads it
	switch p {
	case HTTP1:
		s.Start()
		client = s.Client()
	case HTTP2:
		s.EnableHTTP2 = true
		s.StartTLS()
		client = s.Client()
	case H2C:
		var sp http.Protocols
		sp.SetUnencryptedHTTP2(true)
		s.Config.Protocols = &sp
		s.Start()
		var cp http.Protocols
		cp.SetUnencryptedHTTP2(true)
		client = &http.Client{Transport: &http.Transport{Protocols: &cp, TLSClientConfig: &tls.Config{}}}
	default:
		tb.Fatalf("difftest: unknown protocol %q", p)
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	tb.Cleanup(func() {
		client.CloseIdleConnections()
		s.Close()
	})
	return s.URL, client
}

// Observation is what a client observed of one response.
type Observation struct {
	Status        int         // 0 when no response arrived
	Proto         string      // the response's protocol, as the client saw it
	Header        http.Header // without the fields Ignore names
	Informational []string    // each 1xx response: its code and fields
	Body          []byte
	Trailer       http.Header
	Err           string // how the exchange failed: "" (it did not), "no response", "body"
}

// Ignore lists the response fields a comparison leaves out: those only the middleware adds (its own
// status fields), and those that differ between two servers on every response (Date).
var Ignore = []string{"Date", "X-Cache", "Cache-Status", "Age"}

// Observe sends r with client and records what comes back. It never fails: a failure is part of the
// observation.
func Observe(ctx context.Context, client *http.Client, r *http.Request) Observation {
	var o Observation
	var mu sync.Mutex
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		mu.Lock()
		defer mu.Unlock()
		fields := http.Header(h).Clone()
		for _, name := range Ignore {
			delete(fields, name)
		}
		o.Informational = append(o.Informational, fmt.Sprintf("%d %s", code, formatHeader(fields)))
		return nil
	}}
	r = r.WithContext(httptrace.WithClientTrace(ctx, trace))
	resp, err := client.Do(r)
	if err != nil {
		o.Err = "no response"
		return o
	}
	defer func() { _ = resp.Body.Close() }()
	o.Status, o.Proto = resp.StatusCode, resp.Proto
	o.Header = resp.Header.Clone()
	for _, name := range Ignore {
		delete(o.Header, name)
	}
	body, err := io.ReadAll(resp.Body)
	o.Body = body
	if err != nil {
		o.Err = "body"
	}
	if len(resp.Trailer) > 0 {
		o.Trailer = resp.Trailer.Clone()
	}
	mu.Lock()
	defer mu.Unlock()
	return o
}

// Compare returns how got differs from want, nil when it does not. A failed exchange is compared by
// whether it failed, not by what arrived before it did (that depends on buffering and timing), but a
// response that arrived whole must be whole on both sides. With final, the 1xx responses and the
// trailers are left out (a cache that shares a response sends its waiters the final response only).
func Compare(want, got Observation, final bool) []string {
	var diffs []string
	if (want.Err == "") != (got.Err == "") {
		return append(diffs, fmt.Sprintf("failure: want %q, got %q (status %d/%d, body %d/%d bytes)",
			want.Err, got.Err, want.Status, got.Status, len(want.Body), len(got.Body)))
	}
	if want.Err != "" {
		return nil
	}
	if want.Status != got.Status {
		diffs = append(diffs, fmt.Sprintf("status: want %d, got %d", want.Status, got.Status))
	}
	if a, b := formatHeader(want.Header), formatHeader(got.Header); a != b {
		diffs = append(diffs, fmt.Sprintf("header:\n  want %s\n  got  %s", a, b))
	}
	if !bytes.Equal(want.Body, got.Body) {
		diffs = append(diffs, fmt.Sprintf("body: want %d bytes, got %d (%s)", len(want.Body), len(got.Body), firstDiff(want.Body, got.Body)))
	}
	if final {
		return diffs
	}
	if a, b := formatHeader(want.Trailer), formatHeader(got.Trailer); a != b {
		diffs = append(diffs, fmt.Sprintf("trailer: want %s, got %s", a, b))
	}
	if !slices.Equal(want.Informational, got.Informational) {
		diffs = append(diffs, fmt.Sprintf("1xx: want %q, got %q", want.Informational, got.Informational))
	}
	return diffs
}

// formatHeader writes h in a canonical order.
func formatHeader(h http.Header) string {
	names := make([]string, 0, len(h))
	for name := range h {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, name := range names {
		fmt.Fprintf(&b, "%s=%q ", name, h[name])
	}
	return strings.TrimSpace(b.String())
}

// firstDiff describes where two bodies first differ.
func firstDiff(a, b []byte) string {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return fmt.Sprintf("first difference at byte %d", i)
		}
	}
	return fmt.Sprintf("one is a prefix of the other, length %d", n)
}
