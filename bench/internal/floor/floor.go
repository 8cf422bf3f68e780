// Package floor is the cheapest caching middleware that still answers correctly on the benchmarks'
// routes: golang.org/x/sync/singleflight for the misses and a sync.Map of recorded responses for the
// hits. It is a yardstick, not a cache to ship: it bounds what any middleware with a shared in-memory
// table can cost on the hit path, so the benchmarks can say how far stampede and its peers are from it.
//
// What it leaves out, on purpose, and what makes it unsafe to put in front of real traffic:
//   - the key is method, host, path and raw query, nothing else: no Vary, no canonical query order, no
//     request headers (an authenticated response is served to everyone);
//   - every GET response is stored, whatever its status, Cache-Control or Set-Cookie (private responses
//     and session cookies are replayed to other clients; errors are cached);
//   - entries never expire and the table is unbounded;
//   - a panicking handler takes its waiters down with it; a client that goes away while its request is
//     the one running the handler cancels nothing, and its waiters get what it recorded.
//
// Only GET requests go through the table; other methods reach the handler directly.
package floor

import (
	"bytes"
	"net/http"
	"sync"

	"golang.org/x/sync/singleflight"
)

// Cache is the floor's table of recorded responses and the singleflight group of its misses.
type Cache struct {
	entries sync.Map // key -> *response
	group   singleflight.Group
}

// response is one recorded response.
type response struct {
	status int
	header http.Header
	body   []byte
}

// New returns an empty table.
func New() *Cache { return &Cache{} }

// Key is the table's key for r: method, host, path and raw query.
func Key(r *http.Request) string {
	return r.Method + " " + r.Host + r.URL.Path + "?" + r.URL.RawQuery
}

// Len returns how many responses are recorded.
func (c *Cache) Len() int {
	n := 0
	c.entries.Range(func(any, any) bool { n++; return true })
	return n
}

// Handler puts the table in front of next.
func (c *Cache) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			next.ServeHTTP(w, r)
			return
		}
		key := Key(r)
		if v, ok := c.entries.Load(key); ok {
			v.(*response).replay(w)
			return
		}
		// A miss: one request per key runs the handler, writing to its own client through a recorder;
		// the others wait for what it recorded and replay it.
		leader := false
		v, _, _ := c.group.Do(key, func() (any, error) {
			// A run that finished between the Load above and this call has stored its response and
			// left the group: look again, or the handler would run twice for the key.
			if v, ok := c.entries.Load(key); ok {
				return v, nil
			}
			leader = true
			rec := &recorder{ResponseWriter: w}
			next.ServeHTTP(rec, r)
			resp := rec.response()
			c.entries.Store(key, resp)
			return resp, nil
		})
		if !leader {
			v.(*response).replay(w)
		}
	})
}

func (resp *response) replay(w http.ResponseWriter) {
	h := w.Header()
	for k, vs := range resp.header {
		h[k] = vs // shared, never modified: the recorded slices are read-only
	}
	w.WriteHeader(resp.status)
	_, _ = w.Write(resp.body)
}

// recorder writes through to the client and keeps a copy of the status, the header as it was sent
// and the body.
type recorder struct {
	http.ResponseWriter
	status int
	header http.Header
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(status int) {
	if r.status != 0 {
		return
	}
	r.status = status
	r.header = r.ResponseWriter.Header().Clone()
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}

func (r *recorder) response() *response {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	return &response{status: r.status, header: r.header, body: bytes.Clone(r.body.Bytes())}
}
