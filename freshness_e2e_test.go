package stampede_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed-a1426414/stampede"
)

// fakeClock is a manual clock for freshness decisions: tests move it, nothing sleeps.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// requester sends one GET through the test server.
type requester func(path string, mod ...func(*http.Request)) reply

// freshServer is a real server in front of handler h, with a fake clock and a memory store. do waits
// for the cache's background work after each request (store writes, refreshes); send does not, for
// requests made while a refresh is deliberately held.
func freshServer(t *testing.T, h http.Handler, opts ...stampede.Option) (c *stampede.Cache, clock *fakeClock, do, send requester) {
	t.Helper()
	clock = newFakeClock()
	c = stampede.New(nil, newMem(t), time.Minute, append([]stampede.Option{stampede.WithClock(clock.Now)}, opts...)...)
	srv, client := newServer(t, c.Handler(h), 64)
	send = func(path string, mod ...func(*http.Request)) reply {
		r := get(t.Context(), client, srv.URL+path, func(r *http.Request) {
			for _, m := range mod {
				m(r)
			}
		})
		require.NoError(t, r.err)
		return r
	}
	do = func(path string, mod ...func(*http.Request)) reply {
		r := send(path, mod...)
		c.Wait()
		return r
	}
	return c, clock, do, send
}

func header(name, value string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set(name, value) }
}

func TestMaxAgeDirectives(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		cacheControl string
		opts         []stampede.Option
		advance      time.Duration
		wantHit      bool
	}{
		{"max-age still fresh", "max-age=10", nil, 9 * time.Second, true},
		{"max-age expired", "max-age=10", nil, 11 * time.Second, false},
		{"s-maxage wins over max-age", "max-age=100, s-maxage=10", nil, 11 * time.Second, false},
		{"max-age lengthens the handler ttl", "max-age=3600", nil, 2 * time.Minute, true},
		{"cap keeps the handler ttl", "max-age=3600", []stampede.Option{stampede.WithMaxAgePolicy(stampede.MaxAgeCap)}, 2 * time.Minute, false},
		{"ignore", "max-age=1", []stampede.Option{stampede.WithMaxAgePolicy(stampede.MaxAgeIgnore)}, 30 * time.Second, true},
		{"no handler directive: handler ttl", "", nil, 59 * time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := &origin{serve: func(w http.ResponseWriter, _ *http.Request, n int64) {
				if tt.cacheControl != "" {
					w.Header().Set("Cache-Control", tt.cacheControl)
				}
				fmt.Fprintf(w, "run %d", n)
			}}
			_, clock, do, _ := freshServer(t, o, tt.opts...)
			first := do("/m")
			// "stored" is added only once the write has started, which may be after the header left.
			assert.True(t, strings.HasPrefix(first.header.Get("Cache-Status"), "stampede; fwd=uri-miss"), first.header.Get("Cache-Status"))
			clock.Advance(tt.advance)
			second := do("/m")
			if tt.wantHit {
				assert.Equal(t, "run 1", second.body)
				assert.Equal(t, "HIT", second.header.Get("X-Cache"))
				assert.Equal(t, fmt.Sprint(int(tt.advance/time.Second)), second.header.Get("Age"))
				assert.True(t, strings.HasPrefix(second.header.Get("Cache-Status"), "stampede; hit; ttl="), second.header.Get("Cache-Status"))
			} else {
				assert.Equal(t, "run 2", second.body)
				assert.Equal(t, "MISS", second.header.Get("X-Cache"))
			}
		})
	}
}

// etagOrigin serves a versioned resource with ETag and answers 304 to a matching If-None-Match.
type etagOrigin struct {
	runs, notModified atomic.Int64
	version           atomic.Int64
	cacheControl      string
}

func (o *etagOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.runs.Add(1)
	etag := fmt.Sprintf(`"v%d"`, o.version.Load())
	w.Header().Set("Etag", etag)
	w.Header().Set("Cache-Control", o.cacheControl)
	if r.Header.Get("If-None-Match") == etag {
		o.notModified.Add(1)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	fmt.Fprintf(w, "content %s", etag)
}

func TestNoCacheRevalidates(t *testing.T) {
	t.Parallel()
	o := &etagOrigin{cacheControl: "no-cache"}
	_, _, do, _ := freshServer(t, o)
	first := do("/doc")
	assert.Equal(t, `content "v0"`, first.body)
	second := do("/doc")
	assert.Equal(t, `content "v0"`, second.body, "the stored body, after the handler said 304")
	assert.Equal(t, http.StatusOK, second.status)
	assert.Contains(t, second.header.Get("Cache-Status"), "fwd=stale; fwd-status=304")
	assert.EqualValues(t, 2, o.runs.Load(), "no-cache: every use is revalidated")
	assert.EqualValues(t, 1, o.notModified.Load())

	o.version.Store(1) // the resource changes: revalidation returns the new body
	third := do("/doc")
	assert.Equal(t, `content "v1"`, third.body)
}

func TestConditionalRequestFromCache(t *testing.T) {
	t.Parallel()
	o := &etagOrigin{cacheControl: "max-age=60"}
	_, _, do, _ := freshServer(t, o)
	do("/c")
	r := do("/c", header("If-None-Match", `"v0"`))
	assert.Equal(t, http.StatusNotModified, r.status)
	assert.Empty(t, r.body)
	assert.Equal(t, `"v0"`, r.header.Get("Etag"))
	assert.Equal(t, "HIT", r.header.Get("X-Cache"))
	assert.EqualValues(t, 1, o.runs.Load(), "the 304 came from the cache")

	other := do("/c", header("If-None-Match", `"old"`))
	assert.Equal(t, http.StatusOK, other.status)
	assert.Equal(t, `content "v0"`, other.body)

	// A leading request's validators do not make the shared run conditional: the run stores the full
	// response, and the leading client gets its own 304 from it.
	fresh := do("/c2", header("If-None-Match", `"v0"`))
	assert.Equal(t, http.StatusNotModified, fresh.status)
	assert.Equal(t, "MISS", fresh.header.Get("X-Cache"))
	later := do("/c2")
	assert.Equal(t, `content "v0"`, later.body, "the stored entry is the full response, not a 304")
}

func TestStaleWhileRevalidateUnderLoad(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	var runs atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n := runs.Add(1)
		if n == 2 {
			<-gate // the refresh is held until every client has been answered
		}
		fmt.Fprintf(w, "version %d", n)
	})
	c, clock, do, send := freshServer(t, h, stampede.WithStaleWhileRevalidate(time.Minute))
	assert.Equal(t, "version 1", do("/hot").body)
	clock.Advance(61 * time.Second) // expired, inside the stale window

	const n = 1000
	replies := make([]reply, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { replies[i] = send("/hot") })
	}
	wg.Wait() // all answered while the refresh is still held at the gate: nobody waited for it
	for _, r := range replies {
		require.Equal(t, "version 1", r.body)
		require.Equal(t, "HIT", r.header.Get("X-Cache"))
		require.Contains(t, r.header.Get("Cache-Status"), "detail=stale-while-revalidate")
		require.Contains(t, r.header.Get("Cache-Status"), "ttl=-1")
	}
	close(gate)
	c.Wait()
	assert.EqualValues(t, 2, runs.Load(), "one background refresh for 1,000 stale requests")
	assert.Equal(t, "version 2", do("/hot").body)
	assert.EqualValues(t, 1, c.Snapshot().Refreshes)
	assert.EqualValues(t, n, c.Snapshot().StaleHits)
}

func TestStaleIfError(t *testing.T) {
	t.Parallel()
	var mode atomic.Int32 // 0 ok, 1 answer 500, 2 panic
	var runs atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		runs.Add(1)
		switch mode.Load() {
		case 1:
			http.Error(w, "database down", http.StatusInternalServerError)
		case 2:
			panic("origin crashed")
		default:
			fmt.Fprint(w, "good data")
		}
	})
	_, clock, do, _ := freshServer(t, h, stampede.WithStaleIfError(10*time.Minute))
	assert.Equal(t, "good data", do("/p").body)
	clock.Advance(2 * time.Minute) // expired; inside stale-if-error

	mode.Store(1)
	r := do("/p")
	assert.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "good data", r.body)
	assert.Contains(t, r.header.Get("Cache-Status"), "fwd=stale; fwd-status=500; detail=stale-if-error")
	assert.Equal(t, "120", r.header.Get("Age"))

	mode.Store(2)
	r = do("/p")
	assert.Equal(t, http.StatusOK, r.status, "a panicking refresh is answered with the stale entry")
	assert.Equal(t, "good data", r.body)

	clock.Advance(10 * time.Minute) // past the window
	mode.Store(1)
	r = do("/p")
	assert.Equal(t, http.StatusInternalServerError, r.status)
	assert.Equal(t, "database down\n", r.body)

	mode.Store(0)
	assert.Equal(t, "good data", do("/p").body)
	assert.EqualValues(t, 5, runs.Load())
}

func TestStaleIfErrorConcurrentWaiters(t *testing.T) {
	t.Parallel()
	var fail atomic.Bool
	gate := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if fail.Load() {
			<-gate
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "cached page")
	})
	c, clock, do, send := freshServer(t, h, stampede.WithStaleIfError(time.Hour))
	joins := newJoinCounter(3)
	stampede.SetJoinHook(c, joins.hook)
	do("/w")
	clock.Advance(2 * time.Minute)
	fail.Store(true)
	replies := make([]reply, 4)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() { replies[i] = send("/w") })
	}
	<-joins.reached
	close(gate)
	wg.Wait()
	for _, r := range replies {
		assert.Equal(t, http.StatusOK, r.status)
		assert.Equal(t, "cached page", r.body)
	}
}

func TestEarlyRefresh(t *testing.T) {
	t.Parallel()
	var clock *fakeClock
	var runs atomic.Int64
	gate := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n := runs.Add(1)
		if n == 1 {
			clock.Advance(time.Second) // the handler takes a second: XFetch's delta
		} else {
			<-gate
		}
		fmt.Fprintf(w, "v%d", n)
	})
	c, clk, do, send := freshServer(t, h, stampede.WithEarlyRefresh(1), stampede.WithTTL(10*time.Second))
	clock = clk
	do("/x")
	clock.Advance(8 * time.Second) // 1 s before expiry, with a 1 s compute time
	var wg sync.WaitGroup
	for range 200 {
		wg.Go(func() {
			r := send("/x")
			assert.Equal(t, "HIT", r.header.Get("X-Cache"), "early refresh never makes a request wait")
		})
	}
	wg.Wait()
	assert.EqualValues(t, 2, runs.Load(), "exactly one early refresh in flight for the key")
	close(gate)
	c.Wait()
	clock.Advance(1500 * time.Millisecond) // past the first entry's expiry: the refreshed one is fresh
	r := do("/x")
	assert.Equal(t, "v2", r.body)
	assert.Equal(t, "HIT", r.header.Get("X-Cache"))
}

func TestVaryVariants(t *testing.T) {
	t.Parallel()
	o := &origin{serve: func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Vary", "Accept-Language, Accept-Encoding")
		fmt.Fprintf(w, "run %d lang=%s enc=%s", n, r.Header.Get("Accept-Language"), r.Header.Get("Accept-Encoding"))
	}}
	_, _, do, _ := freshServer(t, o)
	de := do("/v", header("Accept-Language", "de"), header("Accept-Encoding", "gzip, br"))
	fr := do("/v", header("Accept-Language", "fr"), header("Accept-Encoding", "gzip, br"))
	assert.Equal(t, "run 1 lang=de enc=gzip, br", de.body)
	assert.Equal(t, "run 2 lang=fr enc=gzip, br", fr.body)
	de2 := do("/v", header("Accept-Language", "de"), header("Accept-Encoding", "br,gzip"))
	assert.Equal(t, de.body, de2.body, "trivially different Accept-Encoding lists share the variant")
	assert.Equal(t, "HIT", de2.header.Get("X-Cache"))
	fr2 := do("/v", header("Accept-Language", "fr"), header("Accept-Encoding", "gzip,br"))
	assert.Equal(t, fr.body, fr2.body)
	assert.Equal(t, "HIT", fr2.header.Get("X-Cache"))
	none := do("/v", header("Accept-Encoding", "identity"))
	assert.Equal(t, "run 3 lang= enc=identity", none.body)
	assert.EqualValues(t, 3, o.runs.Load())
}

func TestMinUses(t *testing.T) {
	t.Parallel()
	o := &origin{serve: func(w http.ResponseWriter, _ *http.Request, n int64) { fmt.Fprintf(w, "run %d", n) }}
	_, _, do, _ := freshServer(t, o, stampede.WithMinUses(3, time.Minute))
	for i, want := range []string{"MISS", "MISS", "MISS", "HIT", "HIT"} {
		r := do("/one-hit-wonder")
		assert.Equal(t, want, r.header.Get("X-Cache"), "request %d", i+1)
	}
	assert.EqualValues(t, 3, o.runs.Load(), "stored only from the third use")
}

func TestRequestCacheControl(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		opts      []stampede.Option
		wantRerun bool
	}{
		{"ignored by default", nil, false},
		{"honoured with the option", []stampede.Option{stampede.WithHonorRequestCacheControl(true)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := &origin{serve: func(w http.ResponseWriter, _ *http.Request, n int64) { fmt.Fprintf(w, "run %d", n) }}
			_, clock, do, _ := freshServer(t, o, tt.opts...)
			do("/r")
			for _, cc := range []string{"no-cache", "max-age=0"} {
				clock.Advance(time.Second) // max-age=0 asks for a response of age 0 at most
				do("/r", header("Cache-Control", cc))
			}
			if tt.wantRerun {
				assert.EqualValues(t, 3, o.runs.Load())
			} else {
				assert.EqualValues(t, 1, o.runs.Load())
			}
		})
	}
}

func TestCacheStatusOnEveryResponse(t *testing.T) {
	t.Parallel()
	o := &origin{serve: func(w http.ResponseWriter, r *http.Request, _ int64) {
		if r.URL.Path == "/private" {
			w.Header().Set("Cache-Control", "private")
		}
		fmt.Fprint(w, "x")
	}}
	c, _, do, _ := freshServer(t, o, stampede.WithCacheStatusName("edge"))
	assert.Contains(t, []string{"edge; fwd=uri-miss", "edge; fwd=uri-miss; stored"}, do("/a").header.Get("Cache-Status"))
	assert.Equal(t, "edge; hit; ttl=60", do("/a").header.Get("Cache-Status"))
	assert.Equal(t, "edge; fwd=uri-miss; detail=private", do("/private").header.Get("Cache-Status"))
	assert.Equal(t, "edge; fwd=bypass; detail=hit-for-pass", do("/private").header.Get("Cache-Status"))
	post := serveDirect(c.Handler(o), httptest.NewRequest("POST", "/a", nil))
	assert.Equal(t, "edge; fwd=method", post.Header().Get("Cache-Status"))
}
