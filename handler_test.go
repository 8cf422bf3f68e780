package stampede_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/internal/entry"
)

// TestColdKeyThousandConcurrent: 1,000 concurrent requests for one cold key run the handler once and all
// get identical bytes, mounted directly and through a chi router with r.With.
func TestColdKeyThousandConcurrent(t *testing.T) {
	const n = 1000
	payload := strings.Repeat("stampede payload ", 256)
	tests := []struct {
		name  string
		mount func(h http.Handler, mw func(http.Handler) http.Handler) http.Handler
	}{
		{"net/http", func(h http.Handler, mw func(http.Handler) http.Handler) http.Handler { return mw(h) }},
		{"chi r.With", func(h http.Handler, mw func(http.Handler) http.Handler) http.Handler {
			r := chi.NewRouter()
			r.With(mw).Get("/report", h.ServeHTTP)
			return r
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := stampede.New(nil, newMem(t), time.Minute)
			o := &origin{gate: make(chan struct{}), serve: func(w http.ResponseWriter, _ *http.Request, _ int64) {
				w.Header().Set("Content-Type", "text/plain")
				_, _ = w.Write([]byte(payload))
			}}
			inner := tt.mount(o, c.Handler)
			var arrived sync.WaitGroup
			arrived.Add(n)
			go func() { arrived.Wait(); close(o.gate) }() // the run finishes only once all n are in
			srv, client := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				arrived.Done()
				inner.ServeHTTP(w, r)
			}), n)

			replies := make([]reply, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() { replies[i] = get(t.Context(), client, srv.URL+"/report", nil) })
			}
			wg.Wait()
			c.Wait()

			assert.EqualValues(t, 1, o.runs.Load(), "handler runs")
			outcomes := map[string]int{}
			for _, r := range replies {
				require.NoError(t, r.err)
				require.Equal(t, http.StatusOK, r.status)
				require.Equal(t, payload, r.body)
				require.Equal(t, "text/plain", r.header.Get("Content-Type"))
				outcomes[r.header.Get("X-Cache")]++
			}
			assert.Equal(t, 1, outcomes["MISS"], "outcomes %v", outcomes)
			assert.Equal(t, n, outcomes["MISS"]+outcomes["COALESCED"]+outcomes["HIT"], "outcomes %v", outcomes)
			assert.Positive(t, outcomes["COALESCED"], "outcomes %v", outcomes)
		})
	}
}

// TestKeyPairs: which requests share a key (docs/behaviour.md §3.1).
func TestKeyPairs(t *testing.T) {
	t.Parallel()
	req := func(method, target, host string, hdr ...string) *http.Request {
		r := httptest.NewRequest(method, target, nil)
		if host != "" {
			r.Host = host
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Add(hdr[i], hdr[i+1])
		}
		return r
	}
	tests := []struct {
		name string
		a, b *http.Request
		same bool
		opts []stampede.Option
	}{
		{"different query value", req("GET", "/search?q=a", ""), req("GET", "/search?q=b", ""), false, nil},
		{"different host", req("GET", "/x", "a.example"), req("GET", "/x", "b.example"), false, nil},
		{"host case", req("GET", "/x", "A.Example"), req("GET", "/x", "a.example"), true, nil},
		{"path case kept", req("GET", "/User", ""), req("GET", "/user", ""), false, nil},
		{"query order", req("GET", "/q?a=1&b=2", ""), req("GET", "/q?b=2&a=1", ""), true, nil},
		{"repeated value order kept", req("GET", "/q?a=1&a=2", ""), req("GET", "/q?a=2&a=1", ""), false, nil},
		{"query escapes", req("GET", "/q?a=x%20y", ""), req("GET", "/q?a=x+y", ""), true, nil},
		{"empty value", req("GET", "/q?a", ""), req("GET", "/q?a=", ""), true, nil},
		{"no query vs empty", req("GET", "/q", ""), req("GET", "/q?", ""), true, nil},
		{"query vs none", req("GET", "/q?a=1", ""), req("GET", "/q", ""), false, nil},
		{"escaped unreserved: routers see them apart", req("GET", "/%7Euser", ""), req("GET", "/~user", ""), false, nil},
		{"escaped letter: routers see them apart", req("GET", "/p%61ge", ""), req("GET", "/page", ""), false, nil},
		{"escaped slash", req("GET", "/a%2Fb", ""), req("GET", "/a/b", ""), false, nil},
		{"HEAD is GET", req("HEAD", "/x", ""), req("GET", "/x", ""), true, nil},
		{"unkeyed header ignored", req("GET", "/x", "", "X-Forwarded-Host", "evil"), req("GET", "/x", ""), true, nil},
		{"keyed header", req("GET", "/x", "", "Accept-Language", "de"), req("GET", "/x", "", "Accept-Language", "fr"), false,
			[]stampede.Option{stampede.WithHTTPCacheKeyRequestHeaders([]string{"accept-language"})}},
		{"keyed header all values", req("GET", "/x", "", "X-T", "a", "X-T", "b"), req("GET", "/x", "", "X-T", "a"), false,
			[]stampede.Option{stampede.WithHTTPCacheKeyRequestHeaders([]string{"X-T"})}},
		{"authorization splits from anonymous", req("GET", "/x", "", "Authorization", "Bearer a"), req("GET", "/x", ""), false, nil},
		{"tls scheme", func() *http.Request { r := req("GET", "https://h/x", ""); return r }(), req("GET", "http://h/x", ""), false, nil},
		{"long different urls", req("GET", "/"+strings.Repeat("a", 10000)+"1", ""), req("GET", "/"+strings.Repeat("a", 10000)+"2", ""), false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := stampede.New(nil, nil, 0, tt.opts...)
			ka, kb := stampede.StoreKey(c, tt.a), stampede.StoreKey(c, tt.b)
			require.NotEmpty(t, ka)
			assert.Less(t, len(ka), 64, "store keys are bounded")
			if tt.same {
				assert.Equal(t, ka, kb)
			} else {
				assert.NotEqual(t, ka, kb)
			}
		})
	}
}

// TestKeyPairsEndToEnd: the same pairs through a real server and store: a second request gets the
// first's stored body exactly when the keys are equal.
func TestKeyPairsEndToEnd(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		a, b, host string
		same       bool
	}{
		{"query", "/search?q=a", "/search?q=b", "", false},
		{"host", "/x", "/x", "other.example", false},
		{"path case", "/User", "/user", "", false},
		{"query order", "/q?a=1&b=2", "/q?b=2&a=1", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := stampede.New(nil, newMem(t), time.Minute)
			o := &origin{serve: func(w http.ResponseWriter, r *http.Request, n int64) {
				fmt.Fprintf(w, "run %d for %s %s", n, r.Host, r.URL.RequestURI())
			}}
			srv, client := newServer(t, c.Handler(o), 2)
			first := get(t.Context(), client, srv.URL+tt.a, nil)
			c.Wait()
			second := get(t.Context(), client, srv.URL+tt.b, func(r *http.Request) {
				if tt.host != "" {
					r.Host = tt.host
				}
			})
			require.NoError(t, first.err)
			require.NoError(t, second.err)
			if tt.same {
				assert.Equal(t, first.body, second.body)
				assert.Equal(t, "HIT", second.header.Get("X-Cache"))
				assert.EqualValues(t, 1, o.runs.Load())
			} else {
				assert.NotEqual(t, first.body, second.body)
				assert.Equal(t, "MISS", second.header.Get("X-Cache"))
				assert.EqualValues(t, 2, o.runs.Load())
			}
		})
	}
}

// TestUnshareableNeverLeaks: five users ask for /me at once; the response is private (or sets a
// cookie); everyone gets their own body, now and later (docs/behaviour.md §4, §5.6).
func TestUnshareableNeverLeaks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mark   func(w http.ResponseWriter, user string)
		reason string
	}{
		{"cache-control private", func(w http.ResponseWriter, _ string) { w.Header().Set("Cache-Control", "private, max-age=60") }, "private"},
		{"set-cookie", func(w http.ResponseWriter, user string) { w.Header().Set("Set-Cookie", "session="+user) }, "set-cookie"},
		{"no-store", func(w http.ResponseWriter, _ string) { w.Header().Set("Cache-Control", "no-store") }, "no-store"},
		{"vary star", func(w http.ResponseWriter, _ string) { w.Header().Set("Vary", "*") }, "vary-star"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const users = 5
			c := stampede.New(nil, newMem(t), time.Minute)
			joins := newJoinCounter(users - 1)
			stampede.SetJoinHook(c, joins.hook)
			gate := make(chan struct{})
			o := &origin{serve: func(w http.ResponseWriter, r *http.Request, n int64) {
				if n == 1 {
					<-gate // hold the first run until every other user is waiting on it
				}
				user := r.Header.Get("X-User")
				tt.mark(w, user)
				fmt.Fprintf(w, "profile of %s", user)
			}}
			go func() { <-joins.reached; close(gate) }()
			srv, client := newServer(t, c.Handler(o), users)
			replies := make([]reply, users)
			var wg sync.WaitGroup
			for i := range users {
				wg.Go(func() {
					replies[i] = get(t.Context(), client, srv.URL+"/me", func(r *http.Request) {
						r.Header.Set("X-User", fmt.Sprintf("user%d", i))
					})
				})
			}
			wg.Wait()
			for i, r := range replies {
				require.NoError(t, r.err)
				assert.Equal(t, fmt.Sprintf("profile of user%d", i), r.body)
				assert.NotEqual(t, "COALESCED", r.header.Get("X-Cache"))
			}
			assert.EqualValues(t, users, o.runs.Load())
			c.Wait()
			later := get(t.Context(), client, srv.URL+"/me", func(r *http.Request) { r.Header.Set("X-User", "late") })
			require.NoError(t, later.err)
			assert.Equal(t, "profile of late", later.body)
			assert.Equal(t, "BYPASS", later.header.Get("X-Cache"), "hit-for-pass sends later requests straight on")
		})
	}
}

// TestLeaderClientCancels: the first client leaves mid-run; the run goes on, the waiters get the whole
// response, and it is stored (docs/behaviour.md §5.3).
func TestLeaderClientCancels(t *testing.T) {
	t.Parallel()
	store := newMem(t)
	c := stampede.New(nil, store, time.Minute)
	joins := newJoinCounter(3)
	stampede.SetJoinHook(c, joins.hook)
	entered := make(chan struct{}, 1)
	gate := make(chan struct{})
	runCtxErr := make(chan error, 1)
	o := &origin{entered: entered, gate: gate, serve: func(w http.ResponseWriter, r *http.Request, _ int64) {
		runCtxErr <- r.Context().Err()
		_, _ = w.Write([]byte("complete body"))
	}}
	srv, client := newServer(t, c.Handler(o), 4)

	leaderCtx, cancelLeader := context.WithCancel(t.Context())
	leaderDone := make(chan reply, 1)
	go func() { leaderDone <- get(leaderCtx, client, srv.URL+"/slow", nil) }()
	<-entered
	var wg sync.WaitGroup
	replies := make([]reply, 3)
	for i := range 3 {
		wg.Go(func() { replies[i] = get(t.Context(), client, srv.URL+"/slow", nil) })
	}
	<-joins.reached
	cancelLeader()
	assert.Error(t, (<-leaderDone).err)
	close(gate)
	wg.Wait()
	c.Wait()

	assert.NoError(t, <-runCtxErr, "the run's context must not be cancelled by the first client")
	for _, r := range replies {
		require.NoError(t, r.err)
		assert.Equal(t, "complete body", r.body)
		assert.Equal(t, "COALESCED", r.header.Get("X-Cache"))
	}
	later := get(t.Context(), client, srv.URL+"/slow", nil)
	assert.Equal(t, "HIT", later.header.Get("X-Cache"))
	assert.Equal(t, "complete body", later.body)
	assert.EqualValues(t, 1, o.runs.Load())
}

// TestWaiterContextCancelled: a waiter whose own context ends returns at once; the others are unaffected.
func TestWaiterContextCancelled(t *testing.T) {
	t.Parallel()
	c := stampede.New(nil, newMem(t), time.Minute)
	joins := newJoinCounter(2)
	stampede.SetJoinHook(c, joins.hook)
	entered := make(chan struct{}, 1)
	gate := make(chan struct{})
	o := &origin{entered: entered, gate: gate, serve: func(w http.ResponseWriter, _ *http.Request, _ int64) {
		_, _ = w.Write([]byte("ok"))
	}}
	h := c.Handler(o)

	leader := make(chan *httptest.ResponseRecorder, 1)
	go func() { leader <- serveDirect(h, httptest.NewRequest("GET", "/k", nil)) }()
	<-entered
	ctx, cancel := context.WithCancel(t.Context())
	quitter := make(chan *httptest.ResponseRecorder, 1)
	go func() { quitter <- serveDirect(h, httptest.NewRequest("GET", "/k", nil).WithContext(ctx)) }()
	stayer := make(chan *httptest.ResponseRecorder, 1)
	go func() { stayer <- serveDirect(h, httptest.NewRequest("GET", "/k", nil)) }()
	<-joins.reached
	cancel()
	q := <-quitter // returns while the run is still held at the gate
	assert.False(t, q.Flushed)
	assert.Empty(t, q.Body.String())
	close(gate)
	assert.Equal(t, "ok", (<-leader).Body.String())
	s := <-stayer
	assert.Equal(t, "ok", s.Body.String())
	assert.Equal(t, "COALESCED", s.Header().Get("X-Cache"))
	c.Wait()
}

// TestHandlerPanics: no waiter hangs, nothing is stored, and the panic is raised once: the leading
// request's goroutine panics with the handler's value; each waiter answers 500 itself (so one panic is
// logged once), or panics with exactly http.ErrAbortHandler when that was the value (docs/behaviour.md §5.9).
func TestHandlerPanics(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		value any
	}{
		{"plain value", "boom"},
		{"abort handler", http.ErrAbortHandler},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			store := newMem(t)
			c := stampede.New(nil, store, time.Minute)
			joins := newJoinCounter(3)
			stampede.SetJoinHook(c, joins.hook)
			entered := make(chan struct{}, 1)
			gate := make(chan struct{})
			o := &origin{entered: entered, gate: gate, serve: func(http.ResponseWriter, *http.Request, int64) {
				panic(tt.value)
			}}
			h := c.Handler(o)
			type outcome struct {
				panicked any
				status   int
				xcache   string
			}
			outcomes := make(chan outcome, 4)
			serve := func() {
				rec := httptest.NewRecorder()
				defer func() { outcomes <- outcome{recover(), rec.Code, rec.Header().Get("X-Cache")} }()
				h.ServeHTTP(rec, httptest.NewRequest("GET", "/p", nil))
			}
			go serve()
			<-entered
			for range 3 {
				go serve()
			}
			<-joins.reached
			close(gate)
			var panics []any
			var answered []int
			for range 4 {
				o := <-outcomes
				if o.panicked != nil {
					panics = append(panics, o.panicked)
				} else {
					answered = append(answered, o.status)
					assert.Equal(t, "COALESCED", o.xcache)
				}
			}
			c.Wait()
			if tt.value == http.ErrAbortHandler {
				require.Len(t, panics, 4, "every request aborts")
				for _, v := range panics {
					assert.True(t, v == http.ErrAbortHandler, "got %v", v) //nolint:errorlint
				}
			} else {
				assert.Equal(t, []any{"boom"}, panics, "only the leading request panics, with the handler's value")
				assert.Equal(t, []int{500, 500, 500}, answered, "each waiter answers 500")
				assert.EqualValues(t, 3, c.Snapshot().Failed)
			}
			assert.Zero(t, store.Len(), "nothing is stored after a panic")
			// The key is free again: the next request runs the handler (and panics) instead of hanging.
			go serve()
			<-entered
			assert.NotNil(t, (<-outcomes).panicked)
		})
	}
}

// TestPanicStackLoggedOnce: 20 requests over a real server join one run of a handler that panics; the
// panic's stack is written once (by net/http, for the leading request), not once per waiter, whether the
// waiters had been sent nothing (they answer 500) or part of a streamed response (their connections are
// cut with http.ErrAbortHandler, which net/http does not log), and every request is counted in exactly
// one outcome (docs/behaviour.md §5.8, §5.9).
func TestPanicStackLoggedOnce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		streamed bool // the handler writes and flushes before it panics
	}{
		{"before the header", false},
		{"mid-stream", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const n = 20
			var serverLog, cacheLog logBuffer
			c := stampede.New(newLogger(&cacheLog), newMem(t), time.Minute)
			joins := newJoinCounter(n - 1)
			stampede.SetJoinHook(c, joins.hook)
			entered := make(chan struct{}, 1)
			gate := make(chan struct{})
			var headers sync.WaitGroup // the clients that have the streamed response's header
			headers.Add(n)
			o := &origin{entered: entered, gate: gate, serve: func(w http.ResponseWriter, _ *http.Request, _ int64) {
				if tt.streamed {
					_, _ = w.Write([]byte("partial"))
					_ = http.NewResponseController(w).Flush()
					headers.Wait() // every client is mid-stream
				}
				panic("boom")
			}}
			srv := httptest.NewUnstartedServer(c.Handler(o))
			srv.Config.ErrorLog = log.New(&serverLog, "", 0)
			srv.Start()
			t.Cleanup(srv.Close)
			client := srv.Client()
			// A connection per request: the transport resends a GET whose reused connection was cut
			// before it had a response, which would be a second run and a second panic.
			client.Transport.(*http.Transport).DisableKeepAlives = true

			replies := make(chan reply, n)
			send := func() {
				resp, err := client.Get(srv.URL + "/p")
				if err != nil {
					replies <- reply{err: err}
					return
				}
				defer resp.Body.Close()
				if tt.streamed {
					headers.Done()
				}
				_, err = io.ReadAll(resp.Body)
				replies <- reply{status: resp.StatusCode, err: err}
			}
			go send()
			<-entered
			for range n - 1 {
				go send()
			}
			<-joins.reached // every other request waits on the run
			close(gate)
			var cut, answered500 int
			for range n {
				switch r := <-replies; {
				case r.err != nil:
					cut++
				case r.status == http.StatusInternalServerError:
					answered500++
				default:
					t.Errorf("unexpected reply: %d %q", r.status, r.body)
				}
			}
			c.Wait()
			if tt.streamed {
				assert.Equal(t, n, cut, "every client was sent part of the body: every connection is cut")
			} else {
				assert.Equal(t, 1, cut, "only the leading request panics")
				assert.Equal(t, n-1, answered500, "each waiter answers 500")
			}

			all := serverLog.String() + cacheLog.String()
			stacks := regexp.MustCompile(`(?m)^goroutine \d+ \[`).FindAllString(all, -1)
			assert.Len(t, stacks, 1, "one stack for one panic:\n%s", all)
			assert.Equal(t, 1, strings.Count(serverLog.String(), "http: panic serving"))

			s := c.Snapshot()
			assert.EqualValues(t, n, s.Requests)
			assert.EqualValues(t, 1, s.Misses)
			assert.EqualValues(t, n-1, s.Failed)
			assert.EqualValues(t, 1, s.Panics)
			assert.Equal(t, s.Requests, s.Hits+s.StaleHits+s.Misses+s.Coalesced+s.Abandoned+s.Failed+s.Passes)
		})
	}
}

// TestFlushReleasesWaiters: a handler that streams and never ends releases its waiters at the first
// flush; each gets a stream of its own (docs/behaviour.md §5.7), and a stream stops when its client leaves.
func TestFlushReleasesWaiters(t *testing.T) {
	t.Parallel()
	c := stampede.New(nil, newMem(t), time.Minute)
	joins := newJoinCounter(2)
	stampede.SetJoinHook(c, joins.hook)
	entered := make(chan struct{}, 4)
	gate := make(chan struct{})
	var stopped sync.WaitGroup
	o := &origin{serve: func(w http.ResponseWriter, r *http.Request, n int64) {
		defer stopped.Done()
		w.Header().Set("Content-Type", "text/event-stream")
		if n == 1 {
			entered <- struct{}{}
			<-gate
		}
		for i := 0; ; i++ {
			fmt.Fprintf(w, "data: run %d event %d\n\n", n, i)
			if err := http.NewResponseController(w).Flush(); err != nil {
				return
			}
			select {
			case <-r.Context().Done():
				return
			case <-time.After(5 * time.Millisecond): // the stream's pace, not synchronisation
			}
		}
	}}
	stopped.Add(3)
	srv, client := newServer(t, c.Handler(o), 3)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	type first struct {
		line, xcache string
		err          error
	}
	lines := make(chan first, 3)
	open := func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/events", nil)
		resp, err := client.Do(req)
		if err != nil {
			lines <- first{err: err}
			return
		}
		buf := make([]byte, 64)
		n, err := resp.Body.Read(buf)
		lines <- first{line: string(buf[:n]), xcache: resp.Header.Get("X-Cache"), err: err}
		go func() { <-ctx.Done(); resp.Body.Close() }()
	}
	go open()
	<-entered
	go open()
	go open()
	<-joins.reached
	close(gate)
	seen := map[string]bool{}
	for range 3 {
		f := <-lines
		require.NoError(t, f.err)
		assert.NotEqual(t, "COALESCED", f.xcache)
		assert.True(t, strings.HasPrefix(f.line, "data: run "), f.line)
		seen[f.line[:len("data: run 1")]] = true
	}
	assert.Len(t, seen, 3, "each client streams from its own run: %v", seen)
	assert.EqualValues(t, 3, o.runs.Load())
	cancel()
	stopped.Wait() // every stream, the leader's detached one included, ends when its client leaves
}

// TestOuterHeadersNeverReplayed: headers set by middleware outside ours are not recorded (docs/behaviour.md §6.1).
func TestOuterHeadersNeverReplayed(t *testing.T) {
	t.Parallel()
	store := newMem(t)
	c := stampede.New(nil, store, time.Minute)
	o := &origin{serve: func(w http.ResponseWriter, _ *http.Request, _ int64) {
		w.Header().Set("X-Origin", "yes")
		w.Header().Set("Access-Control-Allow-Origin", "https://one.example")
		w.Header().Set("X-Ratelimit-Remaining", "9")
		_, _ = w.Write([]byte("body"))
	}}
	var seq int
	var mu sync.Mutex
	outer := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seq++
			id := fmt.Sprintf("req-%d", seq)
			mu.Unlock()
			w.Header().Set("X-Request-Id", id)
			next.ServeHTTP(w, r)
		})
	}
	srv, client := newServer(t, outer(c.Handler(o)), 2)
	first := get(t.Context(), client, srv.URL+"/h", nil)
	c.Wait()
	second := get(t.Context(), client, srv.URL+"/h", nil)
	require.NoError(t, second.err)
	assert.Equal(t, "req-1", first.header.Get("X-Request-Id"))
	assert.Equal(t, "HIT", second.header.Get("X-Cache"))
	assert.Equal(t, "req-2", second.header.Get("X-Request-Id"), "the replay keeps this request's own id")
	assert.Equal(t, "yes", second.header.Get("X-Origin"))
	assert.Empty(t, second.header.Get("Access-Control-Allow-Origin"), "never-store list")
	assert.Empty(t, second.header.Get("X-Ratelimit-Remaining"), "never-store list")

	b, ok, err := store.Get(t.Context(), stampede.StoreKey(c, httptest.NewRequest("GET", srv.URL+"/h", nil)))
	require.NoError(t, err)
	require.True(t, ok)
	e, err := entry.Decode(b)
	require.NoError(t, err)
	assert.NotContains(t, e.Header, "X-Request-Id")
	assert.NotContains(t, e.Header, "X-Cache")
}

// TestStatusSharingAndStoring: a 5xx is shared with waiters but not stored by default;
// WithHTTPStatusTTL changes that.
func TestStatusSharingAndStoring(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		opts       []stampede.Option
		wantStored bool
	}{
		{"default", nil, false},
		{"status ttl", []stampede.Option{stampede.WithHTTPStatusTTL(func(status int) time.Duration {
			if status >= 500 {
				return 5 * time.Second
			}
			return time.Minute
		})}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := stampede.New(nil, newMem(t), time.Minute, tt.opts...)
			joins := newJoinCounter(2)
			stampede.SetJoinHook(c, joins.hook)
			entered := make(chan struct{}, 2)
			gate := make(chan struct{})
			o := &origin{entered: entered, gate: gate, serve: func(w http.ResponseWriter, _ *http.Request, _ int64) {
				http.Error(w, "upstream down", http.StatusBadGateway)
			}}
			h := c.Handler(o)
			results := make(chan *httptest.ResponseRecorder, 3)
			go func() { results <- serveDirect(h, httptest.NewRequest("GET", "/s", nil)) }()
			<-entered
			for range 2 {
				go func() { results <- serveDirect(h, httptest.NewRequest("GET", "/s", nil)) }()
			}
			<-joins.reached
			close(gate)
			for range 3 {
				r := <-results
				assert.Equal(t, http.StatusBadGateway, r.Code)
				assert.Equal(t, "upstream down\n", r.Body.String())
			}
			c.Wait()
			go func() { results <- serveDirect(h, httptest.NewRequest("GET", "/s", nil)) }()
			if !tt.wantStored {
				<-entered
			}
			later := <-results
			assert.Equal(t, http.StatusBadGateway, later.Code)
			if tt.wantStored {
				assert.Equal(t, "HIT", later.Header().Get("X-Cache"))
				assert.EqualValues(t, 1, o.runs.Load())
			} else {
				assert.Equal(t, "MISS", later.Header().Get("X-Cache"))
				assert.EqualValues(t, 2, o.runs.Load())
			}
		})
	}
}

// TestAuthorization: a request with Authorization shares only public/s-maxage/must-revalidate
// responses, unless Authorization is keyed (docs/behaviour.md §2.3).
func TestAuthorization(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		cacheControl string
		opts         []stampede.Option
		wantSecond   string // X-Cache of the second user's request
		wantBody2    string
	}{
		{"no directive: not stored", "max-age=60", nil, "BYPASS", "for bob"},
		{"public: stored", "public, max-age=60", nil, "HIT", "for alice"},
		{"s-maxage: stored", "s-maxage=60", nil, "HIT", "for alice"},
		{"must-revalidate: stored", "must-revalidate", nil, "HIT", "for alice"},
		{"keyed: per credential", "", []stampede.Option{stampede.WithHTTPCacheKeyRequestHeaders([]string{"Authorization"})}, "MISS", "for bob"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := stampede.New(nil, newMem(t), time.Minute, tt.opts...)
			o := &origin{serve: func(w http.ResponseWriter, r *http.Request, _ int64) {
				if tt.cacheControl != "" {
					w.Header().Set("Cache-Control", tt.cacheControl)
				}
				fmt.Fprintf(w, "for %s", strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
			}}
			h := c.Handler(o)
			as := func(user string) *httptest.ResponseRecorder {
				r := httptest.NewRequest("GET", "/account", nil)
				r.Header.Set("Authorization", "Bearer "+user)
				return serveDirect(h, r)
			}
			assert.Equal(t, "for alice", as("alice").Body.String())
			c.Wait()
			second := as("bob")
			assert.Equal(t, tt.wantBody2, second.Body.String())
			assert.Equal(t, tt.wantSecond, second.Header().Get("X-Cache"))
			// An anonymous request never gets a response made for a credential.
			anon := serveDirect(h, httptest.NewRequest("GET", "/account", nil))
			assert.Equal(t, "for ", anon.Body.String())
			c.Wait()
		})
	}
}

// TestHeadFillsGetEntry: a HEAD miss runs the handler as GET and stores the full entry.
func TestHeadFillsGetEntry(t *testing.T) {
	t.Parallel()
	c := stampede.New(nil, newMem(t), time.Minute)
	methods := make(chan string, 3)
	o := &origin{serve: func(w http.ResponseWriter, r *http.Request, _ int64) {
		methods <- r.Method
		_, _ = w.Write([]byte("full body"))
	}}
	srv, client := newServer(t, c.Handler(o), 2)
	req, _ := http.NewRequest(http.MethodHead, srv.URL+"/doc", nil)
	resp, err := client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, "MISS", resp.Header.Get("X-Cache"))
	c.Wait()
	got := get(t.Context(), client, srv.URL+"/doc", nil)
	assert.Equal(t, "full body", got.body)
	assert.Equal(t, "HIT", got.header.Get("X-Cache"))
	resp, err = client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, "HIT", resp.Header.Get("X-Cache"))
	assert.Equal(t, "GET", <-methods)
	assert.EqualValues(t, 1, o.runs.Load())
}

// TestResponseControllerThroughRecorder: Flush, deadlines and full duplex reach the real writer.
func TestResponseControllerThroughRecorder(t *testing.T) {
	t.Parallel()
	c := stampede.New(nil, newMem(t), time.Minute)
	errs := make(chan error, 3)
	o := &origin{serve: func(w http.ResponseWriter, _ *http.Request, _ int64) {
		rc := http.NewResponseController(w)
		errs <- rc.SetWriteDeadline(time.Now().Add(time.Minute))
		errs <- rc.SetReadDeadline(time.Now().Add(time.Minute))
		_, _ = w.Write([]byte("x"))
		errs <- rc.Flush()
	}}
	srv, client := newServer(t, c.Handler(o), 1)
	r := get(t.Context(), client, srv.URL+"/rc", nil)
	require.NoError(t, r.err)
	for range 3 {
		assert.NoError(t, <-errs)
	}
	_, isFlusher := any(httptest.NewRecorder()).(http.Flusher)
	assert.True(t, isFlusher)
}

// TestPassThrough: requests that are never coalesced reach the handler untouched (docs/behaviour.md §2).
func TestPassThrough(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		req  func() *http.Request
	}{
		{"post", func() *http.Request { return httptest.NewRequest("POST", "/x", strings.NewReader("a")) }},
		{"websocket upgrade", func() *http.Request {
			r := httptest.NewRequest("GET", "/x", nil)
			r.Header.Set("Connection", "Upgrade")
			r.Header.Set("Upgrade", "websocket")
			return r
		}},
		{"request no-store", func() *http.Request {
			r := httptest.NewRequest("GET", "/x", nil)
			r.Header.Set("Cache-Control", "no-store")
			return r
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			store := newMem(t)
			c := stampede.New(nil, store, time.Minute)
			o := &origin{serve: func(w http.ResponseWriter, _ *http.Request, n int64) { fmt.Fprintf(w, "run %d", n) }}
			h := c.Handler(o)
			for i := 1; i <= 2; i++ {
				rec := serveDirect(h, tt.req())
				assert.Equal(t, fmt.Sprintf("run %d", i), rec.Body.String())
				assert.Equal(t, "BYPASS", rec.Header().Get("X-Cache"))
			}
			c.Wait()
			assert.Zero(t, store.Len())
		})
	}
}

// TestKeyedPostBody: an opted-in POST keys its body; identical bodies share, different ones do not, and
// the handler reads the body unchanged.
func TestKeyedPostBody(t *testing.T) {
	t.Parallel()
	c := stampede.New(nil, newMem(t), time.Minute, stampede.WithMethods("GET", "HEAD", "POST"),
		stampede.WithKeyBodyLimit(64))
	o := &origin{serve: func(w http.ResponseWriter, r *http.Request, n int64) {
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(r.Body)
		fmt.Fprintf(w, "run %d read %d bytes", n, buf.Len())
	}}
	h := c.Handler(o)
	post := func(body string) *httptest.ResponseRecorder {
		return serveDirect(h, httptest.NewRequest("POST", "/search", strings.NewReader(body)))
	}
	assert.Equal(t, "run 1 read 5 bytes", post("query").Body.String())
	c.Wait()
	assert.Equal(t, "run 1 read 5 bytes", post("query").Body.String())
	assert.Equal(t, "run 2 read 6 bytes", post("other!").Body.String())
	big := strings.Repeat("z", 1000)
	rec := post(big)
	assert.Equal(t, "run 3 read 1000 bytes", rec.Body.String(), "an over-limit body passes through whole")
	assert.Equal(t, "BYPASS", rec.Header().Get("X-Cache"))
	c.Wait()
}

// TestKeyFuncError: a KeyFunc error passes the request through and is logged once at warn level.
func TestKeyFuncError(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	errNoTenant := errors.New("no tenant")
	mw := stampede.HandlerWithKey(newLogger(&logs), newMem(t), time.Minute, func(r *http.Request) (string, error) {
		tenant := r.Header.Get("X-Tenant")
		if tenant == "" {
			return "", errNoTenant
		}
		return tenant, nil
	})
	o := &origin{serve: func(w http.ResponseWriter, r *http.Request, n int64) {
		fmt.Fprintf(w, "tenant %q run %d", r.Header.Get("X-Tenant"), n)
	}}
	h := mw(o)
	rec := serveDirect(h, httptest.NewRequest("GET", "/dash", nil))
	assert.Equal(t, `tenant "" run 1`, rec.Body.String())
	assert.Equal(t, "BYPASS", rec.Header().Get("X-Cache"))
	assert.Equal(t, 1, strings.Count(logs.String(), "level=WARN"))
	assert.Contains(t, logs.String(), "no tenant")

	for _, tenant := range []string{"a", "b", "a"} {
		r := httptest.NewRequest("GET", "/dash", nil)
		r.Header.Set("X-Tenant", tenant)
		serveDirect(h, r)
	}
	assert.EqualValues(t, 3, o.runs.Load(), "tenants a and b each ran once")
}

// TestCorruptEntries: whatever is under our key that is not a valid entry is a miss, logged, replaced.
func TestCorruptEntries(t *testing.T) {
	t.Parallel()
	valid := entry.Encode(&entry.Entry{Status: 200, Header: http.Header{"A": {"b"}}, Body: []byte("old"),
		StoredAt: time.Now(), Lifetime: time.Hour})
	version := bytes.Clone(valid)
	version[4] = 99
	tests := []struct {
		name  string
		value []byte
	}{
		{"garbage", []byte("not an entry at all, just some bytes that happen to be here")},
		{"truncated", valid[:len(valid)/2]},
		{"foreign json", []byte(`{"status":200,"body":"hello"}`)},
		{"future version", version},
		{"empty", []byte{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var logs logBuffer
			store := newMem(t)
			c := stampede.New(newLogger(&logs), store, time.Minute)
			o := &origin{serve: func(w http.ResponseWriter, _ *http.Request, _ int64) { _, _ = w.Write([]byte("fresh")) }}
			h := c.Handler(o)
			req := httptest.NewRequest("GET", "/c", nil)
			k := stampede.StoreKey(c, req)
			require.NoError(t, store.SetEx(t.Context(), k, tt.value, time.Hour))
			rec := serveDirect(h, req)
			assert.Equal(t, "fresh", rec.Body.String())
			assert.Equal(t, "MISS", rec.Header().Get("X-Cache"))
			assert.Contains(t, logs.String(), "unusable stored entry")
			c.Wait()
			b, ok, err := store.Get(t.Context(), k)
			require.NoError(t, err)
			require.True(t, ok)
			_, err = entry.Decode(b)
			assert.NoError(t, err, "the entry was replaced by a valid one")
			assert.Equal(t, "HIT", serveDirect(h, httptest.NewRequest("GET", "/c", nil)).Header().Get("X-Cache"))
		})
	}
}

// TestBadInputLimits: huge URLs and headers, over-limit responses: no panic, no wrong response.
func TestBadInputLimits(t *testing.T) {
	t.Parallel()
	c := stampede.New(nil, newMem(t), time.Minute, stampede.WithMaxBodyBytes(1024))
	o := &origin{serve: func(w http.ResponseWriter, r *http.Request, _ int64) {
		n := len(r.URL.RawQuery)
		if r.URL.Path == "/big" {
			n = 4096
		}
		_, _ = w.Write(bytes.Repeat([]byte("b"), n))
	}}
	h := c.Handler(o)

	longURL := "/q?x=" + strings.Repeat("u", 1<<20)
	rec := serveDirect(h, httptest.NewRequest("GET", longURL, nil))
	assert.Equal(t, 200, rec.Code)
	assert.Equal(t, "BYPASS", serveDirect(h, httptest.NewRequest("GET", longURL, nil)).Header().Get("X-Cache"),
		"a 1 MiB body exceeds the 1 KiB limit: not shared, hit-for-pass")

	r := httptest.NewRequest("GET", "/hdr", nil)
	r.Header.Set("X-Huge", strings.Repeat("h", 1<<20))
	assert.Equal(t, 200, serveDirect(h, r).Code)

	big := serveDirect(h, httptest.NewRequest("GET", "/big", nil))
	assert.Equal(t, 4096, big.Body.Len(), "the leading client still gets the whole over-limit body")
	c.Wait()
}

// TestInvalidConfigPanics: configuration errors panic when the middleware is built, with a stampede prefix.
func TestInvalidConfigPanics(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		fn   func()
	}{
		{"negative ttl", func() { stampede.Handler(nil, nil, -time.Second) }},
		{"zero body limit", func() { stampede.New(nil, nil, 0, stampede.WithMaxBodyBytes(-1)) }},
		{"zero key body limit", func() { stampede.New(nil, nil, 0, stampede.WithKeyBodyLimit(-5)) }},
		{"zero compute timeout", func() { stampede.New(nil, nil, 0, stampede.WithComputeTimeout(-1)) }},
		{"CONNECT", func() { stampede.New(nil, nil, 0, stampede.WithMethods("CONNECT")) }},
		{"braces in prefix", func() { stampede.New(nil, nil, 0, stampede.WithKeyPrefix("a{b}")) }},
		{"key func of another type", func() { stampede.HandlerWithKey(nil, nil, 0, "tenant") }}, // nil is Handler (issue 13)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			defer func() {
				p := recover()
				require.NotNil(t, p)
				assert.True(t, strings.HasPrefix(fmt.Sprint(p), "stampede: "), "panic %q", p)
			}()
			tt.fn()
		})
	}
}
