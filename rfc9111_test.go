package stampede_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed-a1426414/stampede"
)

// The tests in this file pin the HTTP response model (docs/behaviour.md §4, §6): RFC 9111 freshness,
// revalidation, invalidation, ranges, targeted Cache-Control and the probes that once reached the wrong
// client. Each goes through a real server.

func httpDate(t time.Time) string { return t.UTC().Format(http.TimeFormat) }

// TestEscapedPathNeverSharesAnotherPathsEntry: chi routes on the escaped path, so /p%61ge is a 404 to
// it while /page is a page; neither may be served the other's entry.
func TestEscapedPathNeverSharesAnotherPathsEntry(t *testing.T) {
	t.Parallel()
	for _, first := range []string{"/p%61ge", "/page"} {
		t.Run("first "+first, func(t *testing.T) {
			t.Parallel()
			cache := stampede.New(nil, newMem(t), time.Minute)
			r := chi.NewRouter()
			r.Use(cache.Handler)
			r.Get("/page", func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Cache-Control", "max-age=60")
				fmt.Fprint(w, "the page")
			})
			r.NotFound(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Cache-Control", "max-age=60") // a cacheable 404, the worst case
				http.Error(w, "not found", http.StatusNotFound)
			})
			srv, client := newServer(t, r, 4)
			fetch := func(path string) reply {
				res := get(t.Context(), client, srv.URL+path, nil)
				require.NoError(t, res.err)
				cache.Wait()
				return res
			}
			second := "/page"
			if first == "/page" {
				second = "/p%61ge"
			}
			fetch(first)
			for range 2 {
				page, escaped := fetch("/page"), fetch("/p%61ge")
				assert.Equal(t, http.StatusOK, page.status)
				assert.Equal(t, "the page", page.body)
				assert.Equal(t, http.StatusNotFound, escaped.status)
			}
			_ = second
		})
	}
}

// TestVaryMatchesExactValues: a field that is not a list by definition matches on exactly the values
// the handler sees, so "X-Tenant: ,acme" (an error here) is never stored as the variant of "acme".
func TestVaryMatchesExactValues(t *testing.T) {
	t.Parallel()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Vary", "X-Tenant")
		w.Header().Set("Cache-Control", "max-age=60")
		if tenant := r.Header.Values("X-Tenant"); len(tenant) != 1 || tenant[0] != "acme" {
			http.Error(w, "unknown tenant", http.StatusBadRequest)
			return
		}
		fmt.Fprint(w, "acme's page")
	})
	_, _, do, _ := freshServer(t, h)
	for _, bad := range [][]string{{",acme"}, {"", "acme"}, {"acme,"}, {"Acme"}} {
		r := do("/t", func(r *http.Request) { r.Header["X-Tenant"] = bad })
		assert.Equal(t, http.StatusBadRequest, r.status, "%q", bad)
	}
	good := do("/t", header("X-Tenant", "acme"))
	assert.Equal(t, http.StatusOK, good.status)
	assert.Equal(t, "acme's page", good.body)
	again := do("/t", header("X-Tenant", "acme"))
	assert.Equal(t, "acme's page", again.body)
	assert.Equal(t, "HIT", again.header.Get("X-Cache"))
}

// failingReader serves n bytes, then fails: http.ServeContent on it writes less than its Content-Length.
type failingReader struct {
	*bytes.Reader
	failAt int64
}

func (f *failingReader) Read(p []byte) (int, error) {
	pos, _ := f.Seek(0, io.SeekCurrent)
	if pos >= f.failAt {
		return 0, errors.New("disk on fire")
	}
	p = p[:min(int64(len(p)), f.failAt-pos)]
	return f.Reader.Read(p)
}

// TestShortBodyNeverStoredOrShared: a handler that fails mid-body (fewer bytes than its Content-Length)
// is never stored and never given to another client as whole.
func TestShortBodyNeverStoredOrShared(t *testing.T) {
	t.Parallel()
	store := newMem(t)
	c := stampede.New(nil, store, time.Minute)
	body := bytes.Repeat([]byte("x"), 100_000)
	var runs atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		if runs.Add(1) == 1 {
			http.ServeContent(w, r, "f.txt", time.Time{}, &failingReader{bytes.NewReader(body), 40_000})
			return
		}
		http.ServeContent(w, r, "f.txt", time.Time{}, bytes.NewReader(body))
	})
	srv, client := newServer(t, c.Handler(h), 4)
	first := get(t.Context(), client, srv.URL+"/f", nil)
	assert.Error(t, first.err, "the leading client sees the short body as broken")
	c.Wait()
	assert.Zero(t, store.Len(), "a short body is not stored")
	second := get(t.Context(), client, srv.URL+"/f", nil)
	require.NoError(t, second.err)
	assert.Equal(t, len(body), len(second.body))
	assert.NotEqual(t, "HIT", second.header.Get("X-Cache"))
}

// etagStore is an origin whose responses carry an ETag and that answers conditional requests, with
// what revalidations answer set by the test.
type revalOrigin struct {
	mu       sync.Mutex
	runs     int
	cond     []string // the If-None-Match of each run
	notMod   func(w http.ResponseWriter)
	vary     string
	seenVary []string
}

func (o *revalOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	o.runs++
	n := o.runs
	o.cond = append(o.cond, r.Header.Get("If-None-Match"))
	if o.vary != "" {
		o.seenVary = append(o.seenVary, r.Header.Get(o.vary))
		w.Header().Set("Vary", o.vary)
	}
	notMod := o.notMod
	o.mu.Unlock()
	if r.Header.Get("If-None-Match") == `"v1"` && notMod != nil {
		notMod(w)
		return
	}
	w.Header().Set("Etag", `"v1"`)
	w.Header().Set("Cache-Control", "max-age=10")
	w.Header().Set("X-Version", fmt.Sprint("run ", n))
	fmt.Fprint(w, "body v1")
}

// TestRevalidation: a stale entry with a validator is kept (WithKeep) and revalidated with a conditional
// request carrying the Vary'd request headers; a 304 updates the stored header and makes it fresh again
// (RFC 9111 §4.3, §3.2).
func TestRevalidation(t *testing.T) {
	t.Parallel()
	o := &revalOrigin{vary: "Accept-Language", notMod: func(w http.ResponseWriter) {
		w.Header().Set("Cache-Control", "max-age=10")
		w.Header().Set("X-Version", "updated by 304")
		w.WriteHeader(http.StatusNotModified)
	}}
	c, clock, do, _ := freshServer(t, o)
	lang := header("Accept-Language", "de")
	do("/r", lang)
	clock.Advance(11 * time.Second)
	r := do("/r", lang)
	assert.Equal(t, "body v1", r.body)
	assert.Equal(t, "updated by 304", r.header.Get("X-Version"))
	assert.Contains(t, r.header.Get("Cache-Status"), "fwd=stale; fwd-status=304")
	assert.Equal(t, []string{"", `"v1"`}, o.cond, "the second run is conditional on the stored ETag")
	assert.Equal(t, []string{"de", "de"}, o.seenVary, "with the Vary'd request header")
	hit := do("/r", lang)
	assert.Equal(t, "HIT", hit.header.Get("X-Cache"))
	assert.Equal(t, "updated by 304", hit.header.Get("X-Version"), "the stored header was updated")
	assert.Equal(t, 2, o.runs)
	_ = c
}

// TestRevalidation304PrivateStaysPrivate: a 304 that says private or sets a cookie updates nothing
// shared and reaches no other client; only the client it answered gets the merged response.
func TestRevalidation304PrivateStaysPrivate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		set  func(h http.Header)
	}{
		{"set-cookie", func(h http.Header) { h.Set("Set-Cookie", "session=secret") }},
		{"private", func(h http.Header) { h.Set("Cache-Control", "private") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := &revalOrigin{notMod: func(w http.ResponseWriter) {
				tc.set(w.Header())
				w.Header().Set("X-Version", "from the private 304")
				w.WriteHeader(http.StatusNotModified)
			}}
			_, clock, do, _ := freshServer(t, o)
			do("/p")
			clock.Advance(11 * time.Second)
			mine := do("/p")
			assert.Equal(t, "body v1", mine.body)
			assert.Equal(t, "from the private 304", mine.header.Get("X-Version"), "the client the 304 answered gets it")
			o.mu.Lock()
			o.notMod = nil // the origin answers in full from now on
			o.mu.Unlock()
			other := do("/p")
			assert.Empty(t, other.header.Get("Set-Cookie"), "another client never gets the 304's cookie")
			assert.NotEqual(t, "from the private 304", other.header.Get("X-Version"), "the shared entry was not updated")
		})
	}
}

// TestMustRevalidateForbidsStale: once stale, a must-revalidate response is not served when the
// origin fails, even with WithStaleIfError; its own stale-if-error still allows it (RFC 5861 §4).
func TestMustRevalidateForbidsStale(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cc        string
		wantStale bool
	}{
		{"max-age=10, must-revalidate", false},
		{"max-age=10, proxy-revalidate", false},
		{"max-age=10, must-revalidate, stale-if-error=60", true},
		{"max-age=10", true},
	} {
		t.Run(tc.cc, func(t *testing.T) {
			t.Parallel()
			var fail atomic.Bool
			h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				if fail.Load() {
					http.Error(w, "down", http.StatusServiceUnavailable)
					return
				}
				w.Header().Set("Cache-Control", tc.cc)
				fmt.Fprint(w, "good")
			})
			_, clock, do, _ := freshServer(t, h, stampede.WithStaleIfError(time.Hour))
			do("/m")
			clock.Advance(20 * time.Second)
			fail.Store(true)
			r := do("/m")
			if tc.wantStale {
				assert.Equal(t, "good", r.body)
				assert.Contains(t, r.header.Get("Cache-Status"), "stale-if-error")
			} else {
				assert.Equal(t, http.StatusServiceUnavailable, r.status)
			}
		})
	}
}

// TestExpiresFreshness: Expires - Date is the lifetime when there is no max-age; "0" and past dates are
// stale (RFC 9111 §5.3); an invalid or past Expires never falls back to the handler TTL.
func TestExpiresFreshness(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		expires func(now time.Time) string
		wantHit bool
	}{
		{"future", func(now time.Time) string { return httpDate(now.Add(time.Hour)) }, true},
		{"zero", func(time.Time) string { return "0" }, false},
		{"past", func(now time.Time) string { return httpDate(now.Add(-time.Hour)) }, false},
		{"garbage", func(time.Time) string { return "soon" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var clock *fakeClock
			var runs atomic.Int64
			h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				now := clock.Now()
				w.Header().Set("Date", httpDate(now))
				w.Header().Set("Expires", tc.expires(now))
				fmt.Fprint(w, "run ", runs.Add(1))
			})
			_, clk, do, _ := freshServer(t, h)
			clock = clk
			do("/e")
			clock.Advance(time.Second)
			r := do("/e")
			if tc.wantHit {
				assert.Equal(t, "HIT", r.header.Get("X-Cache"))
			} else {
				assert.Equal(t, "run 2", r.body)
			}
		})
	}
}

// TestAgeCounts: the received Age counts towards the current age (RFC 9111 §4.2.3), and a replayed
// response carries Age = its current age; an Age that is not a non-negative integer is ignored (§5.1).
func TestAgeCounts(t *testing.T) {
	t.Parallel()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=100")
		w.Header().Set("Age", r.URL.Query().Get("age"))
		fmt.Fprint(w, "x")
	})
	_, clock, do, _ := freshServer(t, h)
	do("/a?age=30")
	clock.Advance(5 * time.Second)
	hit := do("/a?age=30")
	assert.Equal(t, "HIT", hit.header.Get("X-Cache"))
	assert.Equal(t, "35", hit.header.Get("Age"))
	do("/a?age=200")
	assert.NotEqual(t, "HIT", do("/a?age=200").header.Get("X-Cache"), "older than its max-age: stale at once")
	do("/a?age=x")
	hit = do("/a?age=x")
	assert.Equal(t, "HIT", hit.header.Get("X-Cache"), "an invalid Age is ignored: fresh for its max-age")
	assert.Equal(t, "0", hit.header.Get("Age"))
	do("/a?age=-7200")
	assert.Equal(t, "HIT", do("/a?age=-7200").header.Get("X-Cache"), "a negative Age is ignored")
}

// TestExplicitFreshnessAnyStatus: a response with explicit freshness is stored whatever its status; the
// handler TTL only applies to the heuristically cacheable statuses (RFC 9111 §3, §4.2.2).
func TestExplicitFreshnessAnyStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status  int
		cc      string
		wantHit bool
	}{
		{302, "max-age=60", true}, {307, "max-age=60", true}, {400, "max-age=60", true}, {500, "max-age=60", true},
		{302, "", false}, {500, "", false}, {404, "", true}, {200, "max-age=0", false},
	} {
		t.Run(fmt.Sprintf("%d %s", tc.status, tc.cc), func(t *testing.T) {
			t.Parallel()
			h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				if tc.cc != "" {
					w.Header().Set("Cache-Control", tc.cc)
				}
				w.WriteHeader(tc.status)
			})
			_, _, do, _ := freshServer(t, h)
			do("/s")
			assert.Equal(t, tc.wantHit, do("/s").header.Get("X-Cache") == "HIT")
		})
	}
}

// TestInvalidationByUnsafeMethods: a non-error response to POST, PUT, DELETE, PATCH or an unknown method
// invalidates what is stored for the target URI, every variant included, and for a same-host Location
// or Content-Location (RFC 9111 §4.4); an error response or another host's URI does not.
func TestInvalidationByUnsafeMethods(t *testing.T) {
	t.Parallel()
	var runs sync.Map // path -> *atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			if loc := r.URL.Query().Get("location"); loc != "" {
				w.Header().Set("Location", loc)
			}
			if r.URL.Query().Get("fail") != "" {
				w.WriteHeader(http.StatusInternalServerError)
			}
			return
		}
		n, _ := runs.LoadOrStore(r.URL.Path, new(atomic.Int64))
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Vary", "Accept-Language")
		fmt.Fprintf(w, "%s run %d", r.URL.Path, n.(*atomic.Int64).Add(1))
	})
	c := stampede.New(nil, newMem(t), time.Minute)
	srv, client := newServer(t, c.Handler(h), 4)
	send := func(method, path string, mod ...func(*http.Request)) string {
		req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, nil)
		require.NoError(t, err)
		for _, m := range mod {
			m(req)
		}
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		c.Wait()
		return string(b)
	}
	de, fr := header("Accept-Language", "de"), header("Accept-Language", "fr")
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH", "M-SEARCH"} {
		t.Run(m, func(t *testing.T) {
			path := "/doc-" + m
			first := send("GET", path, de)
			send("GET", path, fr)
			require.Equal(t, first, send("GET", path, de), "stored")
			send(m, path+"?fail=1")
			assert.Equal(t, first, send("GET", path, de), "an error response invalidates nothing")
			send(m, path)
			again := send("GET", path, de)
			assert.NotEqual(t, first, again, "the de variant was invalidated")
			assert.Contains(t, send("GET", path, fr), "run 4", "and so was the fr variant")

			other := "/other-" + m
			o1 := send("GET", other)
			send(m, path+"?location=http://elsewhere.example"+other)
			assert.Equal(t, o1, send("GET", other), "another host's URI is left alone")
			send(m, path+"?location="+other)
			assert.NotEqual(t, o1, send("GET", other), "a same-host Location is invalidated")
		})
	}
}

// TestRanges: a miss led by a Range request runs the handler for the whole representation and answers
// that client with its 206; a stored 200 answers single ranges; If-Range that does not match gets the
// whole 200; an unsatisfiable range a 416; a 206 from the handler is never stored (RFC 9110 §14,
// RFC 9111 §3.3).
func TestRanges(t *testing.T) {
	t.Parallel()
	var seenRange []string
	var mu sync.Mutex
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seenRange = append(seenRange, r.Header.Get("Range")+"|"+r.Header.Get("If-Range"))
		mu.Unlock()
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Etag", `"abc"`)
		fmt.Fprint(w, "0123456789")
	})
	_, _, do, _ := freshServer(t, h)
	first := do("/r", header("Range", "bytes=2-4"))
	assert.Equal(t, http.StatusPartialContent, first.status)
	assert.Equal(t, "234", first.body)
	assert.Equal(t, "bytes 2-4/10", first.header.Get("Content-Range"))
	assert.Equal(t, []string{"|"}, seenRange, "the run asked for the whole representation")

	whole := do("/r")
	assert.Equal(t, http.StatusOK, whole.status)
	assert.Equal(t, "0123456789", whole.body)
	assert.Equal(t, "HIT", whole.header.Get("X-Cache"))
	for _, tc := range []struct {
		rng, ifRange string
		status       int
		body         string
	}{
		{"bytes=-3", "", 206, "789"},
		{"bytes=7-", `"abc"`, 206, "789"},
		{"bytes=0-0", `"other"`, 200, "0123456789"},
		{"bytes=20-", "", 416, ""},
		{"bytes=0-1,4-5", "", 200, "0123456789"},
		{"items=0-1", "", 200, "0123456789"},
	} {
		r := do("/r", header("Range", tc.rng), func(r *http.Request) {
			if tc.ifRange != "" {
				r.Header.Set("If-Range", tc.ifRange)
			}
		})
		assert.Equal(t, tc.status, r.status, "%s %s", tc.rng, tc.ifRange)
		assert.Equal(t, tc.body, r.body, "%s %s", tc.rng, tc.ifRange)
	}
	assert.Len(t, seenRange, 1, "all from the cache")

	partial := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Range", "bytes 0-1/10")
		w.WriteHeader(http.StatusPartialContent)
		fmt.Fprint(w, "01")
	})
	_, _, pdo, _ := freshServer(t, partial, stampede.WithHTTPStatusTTL(func(int) time.Duration { return time.Hour }))
	pdo("/p")
	assert.NotEqual(t, "HIT", pdo("/p").header.Get("X-Cache"), "a 206 is never stored, whatever WithHTTPStatusTTL says")
}

// TestTargetedCacheControl: CDN-Cache-Control, and a field named by WithTargetedCacheControl before
// it, replace Cache-Control and Expires for this cache (RFC 9213); clients still get Cache-Control.
func TestTargetedCacheControl(t *testing.T) {
	t.Parallel()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Cdn-Cache-Control", "max-age=60")
		if r.URL.Path == "/own" {
			w.Header().Set("Stampede-Cache-Control", "no-store")
		}
		fmt.Fprint(w, "x")
	})
	_, _, do, _ := freshServer(t, h, stampede.WithTargetedCacheControl("Stampede-Cache-Control", "CDN-Cache-Control"))
	do("/cdn")
	r := do("/cdn")
	assert.Equal(t, "HIT", r.header.Get("X-Cache"), "CDN-Cache-Control wins over Cache-Control")
	assert.Equal(t, "no-store", r.header.Get("Cache-Control"))
	do("/own")
	assert.NotEqual(t, "HIT", do("/own").header.Get("X-Cache"), "the cache's own field wins over both")

	_, _, plain, _ := freshServer(t, h, stampede.WithTargetedCacheControl())
	plain("/cdn")
	assert.NotEqual(t, "HIT", plain("/cdn").header.Get("X-Cache"), "with no targets, Cache-Control alone counts")
}

// TestRequestDirectives: with WithHonorRequestCacheControl, no-cache revalidates the stored entry with
// a conditional request; max-stale accepts a stale entry; min-fresh refuses one that expires too soon;
// only-if-cached answers 504 when nothing stored can answer (RFC 9111 §5.2.1).
func TestRequestDirectives(t *testing.T) {
	t.Parallel()
	o := &revalOrigin{notMod: func(w http.ResponseWriter) { w.WriteHeader(http.StatusNotModified) }}
	_, clock, do, _ := freshServer(t, o, stampede.WithHonorRequestCacheControl(true))
	do("/q")
	clock.Advance(time.Second)
	r := do("/q", header("Cache-Control", "no-cache"))
	assert.Equal(t, "body v1", r.body)
	assert.Equal(t, `"v1"`, o.cond[len(o.cond)-1], "no-cache revalidates conditionally")
	assert.Contains(t, r.header.Get("Cache-Status"), "fwd=stale; fwd-status=304")

	runs := o.runs
	assert.Equal(t, "HIT", do("/q", header("Cache-Control", "min-fresh=5")).header.Get("X-Cache"))
	do("/q", header("Cache-Control", "min-fresh=30"))
	assert.Equal(t, runs+1, o.runs, "min-fresh beyond the freshness left revalidates")

	clock.Advance(time.Minute)
	stale := do("/q", header("Cache-Control", "max-stale"))
	assert.Equal(t, "HIT", stale.header.Get("X-Cache"))
	assert.Contains(t, stale.header.Get("Cache-Status"), "max-stale")

	miss := do("/nothing", header("Cache-Control", "only-if-cached"))
	assert.Equal(t, http.StatusGatewayTimeout, miss.status)
	assert.Equal(t, runs+1, o.runs, "only-if-cached never runs the handler")
}

// TestSetCookie2NeverShared: the obsolete Set-Cookie2 is a cookie too.
func TestSetCookie2NeverShared(t *testing.T) {
	t.Parallel()
	var runs atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Set-Cookie2", fmt.Sprint("id=", runs.Add(1)))
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "x")
	})
	_, _, do, _ := freshServer(t, h)
	a, b := do("/c"), do("/c")
	assert.Equal(t, "id=1", a.header.Get("Set-Cookie2"))
	assert.Equal(t, "id=2", b.header.Get("Set-Cookie2"))
}

// TestTrailersNeverShared: a response that declares trailers is not shared or stored (a Set-Cookie
// trailer never reaches another client), and reaches its own client with its trailers.
func TestTrailersNeverShared(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	store := newMem(t)
	c := stampede.New(newLogger(&logs), store, time.Minute)
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Trailer", "X-Checksum, Set-Cookie")
		w.Header().Set("Trailer:X-Early", "1")
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "body")
		w.Header().Set("X-Checksum", "abc")
		w.Header().Set("Set-Cookie", "session=secret")
		w.Header().Set(http.TrailerPrefix+"X-Late", "2")
	})
	srv, client := newServer(t, c.Handler(h), 2)
	first := get(t.Context(), client, srv.URL+"/t", nil)
	require.NoError(t, first.err)
	c.Wait()
	second := get(t.Context(), client, srv.URL+"/t", nil)
	require.NoError(t, second.err)
	// A response that declares trailers is its own client's alone (reason trailers): the next request
	// runs the handler itself, and nothing is stored.
	assert.Equal(t, "BYPASS", second.header.Get("X-Cache"))
	assert.Equal(t, "body", second.body)
	assert.NotContains(t, logs.String(), "unusable stored entry")
	assert.Equal(t, 0, store.Len())
}

// TestPurgeWithAuthorization: Purge of a request that carries Authorization purges the entry that
// request is served.
func TestPurgeWithAuthorization(t *testing.T) {
	t.Parallel()
	var runs atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		fmt.Fprint(w, "run ", runs.Add(1))
	})
	c := stampede.New(nil, newMem(t), time.Minute)
	srv, client := newServer(t, c.Handler(h), 2)
	auth := func(r *http.Request) { r.Header.Set("Authorization", "Bearer t") }
	do := func() reply {
		r := get(t.Context(), client, srv.URL+"/a", auth)
		require.NoError(t, r.err)
		c.Wait()
		return r
	}
	do()
	require.Equal(t, "HIT", do().header.Get("X-Cache"))
	req := httptest.NewRequest("GET", srv.URL+"/a", nil)
	auth(req)
	require.NoError(t, c.Purge(context.Background(), req))
	assert.Equal(t, "run 2", do().body)
}

// TestNeverStoredNeverSaysStored: Cache-Status never says "stored" for a response that is not stored.
func TestNeverStoredNeverSaysStored(t *testing.T) {
	t.Parallel()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/500":
			w.WriteHeader(http.StatusInternalServerError)
		case "/max-age-0":
			w.Header().Set("Cache-Control", "max-age=0")
		case "/vary-star":
			w.Header().Set("Vary", "*")
		case "/no-store":
			w.Header().Set("Cache-Control", "no-store")
		}
		fmt.Fprint(w, "x")
	})
	_, _, do, _ := freshServer(t, h)
	for _, p := range []string{"/500", "/max-age-0", "/vary-star", "/no-store"} {
		for range 2 {
			r := do(p)
			assert.False(t, strings.Contains(r.header.Get("Cache-Status"), "stored"), "%s: %s", p, r.header.Get("Cache-Status"))
			assert.NotEqual(t, "HIT", r.header.Get("X-Cache"), p)
		}
	}
}
