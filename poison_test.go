package stampede_test

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed-a1426414/stampede"
)

// Cache poisoning with unkeyed request headers (docs/behaviour.md §3.1: headers are key material only when named).
// An attacker sends a request with a header the key ignores; a victim then asks for the same URL without
// it. What the victim receives depends on the origin, and these tests pin each case:
//
//   - the origin ignores the header: the middleware itself never acts on it (the key, the method, the
//     path are the request's own), so the victim gets the clean page;
//   - the origin reflects the header, unkeyed: the attacker's page is shared and stored, and the victim
//     receives it. This is the documented user responsibility (SECURITY.md): key the header or Vary on it;
//   - the header is keyed: the victim's request has another key and gets the clean page;
//   - the response says Vary on the header: the attacker's page is replayed only to requests with the
//     same value; the victim gets the clean page.

var poisonHeaders = []struct {
	name, value string
}{
	{"X-Forwarded-Host", "evil.example"},
	{"X-Original-URL", "/admin"},
	{"X-HTTP-Method-Override", "DELETE"},
}

// poisonOrigin renders a page whose script URL, path and method come from the request, or, when
// reflect is set, from the named override header, as many frameworks do.
func poisonOrigin(header string, reflect, vary bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, path, method := r.Host, r.URL.Path, r.Method
		if v := r.Header.Get(header); reflect && v != "" {
			switch header {
			case "X-Forwarded-Host":
				host = v
			case "X-Original-URL":
				path = v
			case "X-HTTP-Method-Override":
				method = v
			}
		}
		if vary {
			w.Header().Set("Vary", header)
		}
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, `%s %s <script src="https://%s/app.js">`, method, path, host)
	})
}

func TestUnkeyedHeaderPoisoning(t *testing.T) {
	t.Parallel()
	modes := []struct {
		name          string
		reflect, vary bool
		keyed         bool
		poisoned      bool // the victim receives the attacker's page
	}{
		{name: "ignored by origin", poisoned: false},
		{name: "reflected unkeyed", reflect: true, poisoned: true}, // the user's job: key it or Vary it
		{name: "reflected keyed", reflect: true, keyed: true},
		{name: "reflected with vary", reflect: true, vary: true},
	}
	for _, hdr := range poisonHeaders {
		for _, mode := range modes {
			for _, waiter := range []bool{true, false} {
				timing := "later"
				if waiter {
					timing = "waiter"
				}
				t.Run(hdr.name+"/"+mode.name+"/"+timing, func(t *testing.T) {
					t.Parallel()
					var opts []stampede.Option
					if mode.keyed {
						opts = append(opts, stampede.WithHTTPCacheKeyRequestHeaders([]string{hdr.name}))
					}
					c := stampede.New(nil, newMem(t), time.Minute, opts...)
					joined := make(chan struct{}, 2)
					stampede.SetJoinHook(c, func() { joined <- struct{}{} })
					entered, gate := make(chan struct{}, 1), make(chan struct{})
					var runs atomic.Int64
					inner := poisonOrigin(hdr.name, mode.reflect, mode.vary)
					h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						if runs.Add(1) == 1 { // hold the attacker's run until the victim waits on it
							entered <- struct{}{}
							if waiter {
								<-gate
							}
						}
						inner.ServeHTTP(w, r)
					})
					srv, client := newServer(t, c.Handler(h), 4)
					attack := func(r *http.Request) { r.Header.Set(hdr.name, hdr.value) }

					clean := fmt.Sprintf(`GET /page <script src="https://%s/app.js">`, srv.Listener.Addr())
					poisoned := clean
					if mode.reflect {
						poisoned = map[string]string{
							"X-Forwarded-Host":       `GET /page <script src="https://evil.example/app.js">`,
							"X-Original-URL":         fmt.Sprintf(`GET /admin <script src="https://%s/app.js">`, srv.Listener.Addr()),
							"X-HTTP-Method-Override": fmt.Sprintf(`DELETE /page <script src="https://%s/app.js">`, srv.Listener.Addr()),
						}[hdr.name]
					}

					var attacker, victim reply
					if waiter {
						done := make(chan reply)
						go func() { done <- get(t.Context(), client, srv.URL+"/page", attack) }()
						<-entered
						victimDone := make(chan reply)
						go func() { victimDone <- get(t.Context(), client, srv.URL+"/page", nil) }()
						if !mode.keyed {
							<-joined // the victim waits on the attacker's run
						} else {
							victim = <-victimDone // another key: the victim runs on its own at once
						}
						close(gate)
						attacker = <-done
						if !mode.keyed {
							victim = <-victimDone
						}
					} else {
						attacker = get(t.Context(), client, srv.URL+"/page", attack)
						c.Wait()
						victim = get(t.Context(), client, srv.URL+"/page", nil)
					}
					c.Wait()
					require.NoError(t, attacker.err)
					require.NoError(t, victim.err)
					assert.Equal(t, poisoned, attacker.body, "the attacker's own page")
					if mode.poisoned {
						assert.Equal(t, poisoned, victim.body, "unkeyed and reflected: shared, as documented")
					} else {
						assert.Equal(t, clean, victim.body, "the victim's page")
					}
					// The middleware never keys these headers by itself.
					withHeader, _ := http.NewRequest("GET", srv.URL+"/page", nil)
					attack(withHeader)
					without, _ := http.NewRequest("GET", srv.URL+"/page", nil)
					assert.Equal(t, !mode.keyed, stampede.StoreKey(c, withHeader) == stampede.StoreKey(c, without))
				})
			}
		}
	}
}

// rewriteOriginalURL is the X-Original-URL convention of some frameworks and proxies: the request is
// routed as if it were for the URL in the header.
func rewriteOriginalURL(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u := r.Header.Get("X-Original-URL"); u != "" {
			r = r.Clone(r.Context())
			r.URL.Path, r.URL.RawPath, r.RequestURI = u, "", u
		}
		next.ServeHTTP(w, r)
	})
}

// methodOverride is the X-HTTP-Method-Override convention: the request is handled as the named method.
func methodOverride(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m := r.Header.Get("X-HTTP-Method-Override"); m != "" {
			r = r.Clone(r.Context())
			r.Method = m
		}
		next.ServeHTTP(w, r)
	})
}

// TestRewritingMiddlewarePlacement: middleware that acts on X-Original-URL or X-HTTP-Method-Override
// must run before (outside) the cache, so the key is computed on the request the handler serves. Mounted
// inside, it lets one request poison the entry of another URL or method; mounted outside, it cannot.
func TestRewritingMiddlewarePlacement(t *testing.T) {
	t.Parallel()
	app := http.NewServeMux()
	app.HandleFunc("GET /page", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "public page") })
	app.HandleFunc("GET /admin", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "admin page") })
	app.HandleFunc("DELETE /page", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "page deleted") })
	tests := []struct {
		name      string
		rewriter  func(http.Handler) http.Handler
		header    string
		value     string
		inside    bool
		attackGot string
		victimGot string
	}{
		{"X-Original-URL inside the cache", rewriteOriginalURL, "X-Original-URL", "/admin", true, "admin page", "admin page"},
		{"X-Original-URL outside the cache", rewriteOriginalURL, "X-Original-URL", "/admin", false, "admin page", "public page"},
		{"method override inside the cache", methodOverride, "X-HTTP-Method-Override", "DELETE", true, "page deleted", "page deleted"},
		{"method override outside the cache", methodOverride, "X-HTTP-Method-Override", "DELETE", false, "page deleted", "public page"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := stampede.New(nil, newMem(t), time.Minute)
			var h http.Handler
			if tt.inside {
				h = c.Handler(tt.rewriter(app)) // wrong order: the cache keys the request before the rewrite
			} else {
				h = tt.rewriter(c.Handler(app)) // right order
			}
			srv, client := newServer(t, h, 2)
			attacker := get(t.Context(), client, srv.URL+"/page", func(r *http.Request) { r.Header.Set(tt.header, tt.value) })
			c.Wait()
			victim := get(t.Context(), client, srv.URL+"/page", nil)
			require.NoError(t, attacker.err)
			require.NoError(t, victim.err)
			assert.Equal(t, tt.attackGot, attacker.body)
			assert.Equal(t, tt.victimGot, victim.body)
		})
	}
}
