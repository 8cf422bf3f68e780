package stampede_test

// Stale windows and failed refreshes (decide.go: refreshOf, refreshFailed, decide; freshness of
// decide.go's freshnessOf): a stale-while-revalidate or stale-if-error window extends only a response
// that is storable on its own, and a background refresh that fails keeps the entry it refreshes.

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed-a1426414/stampede"
)

// heuristicStatus reports the statuses the handler TTL stores (RFC 9110 §15.1's heuristically
// cacheable ones), written out here independently of internal/httpcache.
func heuristicStatus(s int) bool {
	switch s {
	case 200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// TestStaleWindowsNeverStoreWhatIsNotStorable is a differential test over every status net/http names
// and a set of Cache-Control values: a cache with stale windows (configured, or the response's own)
// serves a response from the store only if the same cache without windows would, or if its status is
// one the handler TTL stores. A 400 or 500 that the handler TTL does not store is never replayed from
// a window (Nguyen et al., "Your Cache Has Fallen: Cache-Poisoned Denial-of-Service", CCS 2019).
func TestStaleWindowsNeverStoreWhatIsNotStorable(t *testing.T) {
	t.Parallel()
	ccs := []string{"", "max-age=0", "no-cache", "stale-while-revalidate=600, stale-if-error=600",
		"max-age=0, stale-while-revalidate=600, stale-if-error=600", "max-age=0, must-revalidate", "public"}
	var statuses []int
	for s := 200; s < 600; s++ {
		if http.StatusText(s) != "" && s != http.StatusNotModified && s != http.StatusPartialContent {
			statuses = append(statuses, s)
		}
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		parts := strings.Split(r.URL.Path, "/") // /<status>/<cc index>
		s, _ := strconv.Atoi(parts[1])
		i, _ := strconv.Atoi(parts[2])
		if ccs[i] != "" {
			w.Header().Set("Cache-Control", ccs[i])
		}
		w.WriteHeader(s)
		fmt.Fprint(w, "body of ", r.URL.Path)
	})
	_, _, plain, _ := freshServer(t, h)
	_, clock, windows, _ := freshServer(t, h, stampede.WithStaleWhileRevalidate(10*time.Minute),
		stampede.WithStaleIfError(10*time.Minute))
	stored := func(do requester, path string) bool {
		return do(path).header.Get("X-Cache") == "HIT"
	}
	var checked, heuristicStale int
	plainStored := map[string]bool{}
	for _, s := range statuses {
		for i := range ccs {
			path := fmt.Sprintf("/%d/%d", s, i)
			plain(path)
			windows(path)
			p, w := stored(plain, path), stored(windows, path)
			plainStored[path] = p
			checked++
			if w && !p {
				require.Truef(t, heuristicStatus(s), "%s (Cache-Control %q): replayed only because of a stale window", path, ccs[i])
				heuristicStale++
			}
		}
	}
	// Past every lifetime the handler TTL gives, inside the windows: an error status comes back only
	// when the cache without windows stored it too (a public 500 gets the handler TTL).
	clock.Advance(2 * time.Minute)
	for _, s := range []int{400, 403, 431, 500, 502, 503} {
		for i := range ccs {
			path := fmt.Sprintf("/%d/%d", s, i)
			if plainStored[path] {
				continue
			}
			r := windows(path)
			assert.NotEqualf(t, "HIT", r.header.Get("X-Cache"), "%s (Cache-Control %q) served from the store", path, ccs[i])
			assert.NotContainsf(t, r.header.Get("Cache-Status"), "stored", "%s (Cache-Control %q)", path, ccs[i])
		}
	}
	t.Logf("%d status × Cache-Control pairs; %d stale at once yet kept because the handler TTL stores their status", checked, heuristicStale)
	assert.Positive(t, heuristicStale, "max-age=0 with stale-while-revalidate on a 200 still gets its window")
}

// TestFailedRefreshKeepsStaleEntry: a background refresh (stale-while-revalidate) that fails with an
// error status, a panic or the compute timeout leaves the stale entry in place: it is served for the
// rest of the window, then within stale-if-error, and the failure is stored for nobody (nor is the 4xx
// of a request that runs the handler itself once the window is over).
func TestFailedRefreshKeepsStaleEntry(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		fail func(w http.ResponseWriter, r *http.Request)
		// clientStatus: what a request past stale-while-revalidate that runs the handler itself gets:
		// stale-if-error (200) for a 5xx, a panic or a timeout (RFC 5861 §4), the handler's own
		// answer for a 4xx, which may be about that request.
		clientStatus int
	}{
		{"500", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", http.StatusInternalServerError) }, 200},
		{"503 with max-age", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Cache-Control", "max-age=300")
			http.Error(w, "down", http.StatusServiceUnavailable)
		}, 200},
		{"400 from an oversized header", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "bad", http.StatusBadRequest) }, 400},
		{"431 with max-age", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Cache-Control", "max-age=300")
			http.Error(w, "too large", http.StatusRequestHeaderFieldsTooLarge)
		}, 431},
		{"panic", func(http.ResponseWriter, *http.Request) { panic("origin crashed") }, 200},
		// A request that runs the handler itself past the window gets what the handler wrote when its
		// run passed the compute timeout (behaviour §5.8): not checked here.
		{"compute timeout", func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var failing atomic.Bool
			var runs atomic.Int64
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := runs.Add(1)
				if failing.Load() {
					tc.fail(w, r)
					return
				}
				fmt.Fprintf(w, "good %d", n)
			})
			c, clock, do, _ := freshServer(t, h, stampede.WithStaleWhileRevalidate(time.Minute),
				stampede.WithStaleIfError(10*time.Minute), stampede.WithComputeTimeout(200*time.Millisecond))
			require.Equal(t, "good 1", do("/k").body)
			clock.Advance(61 * time.Second) // stale, inside stale-while-revalidate
			failing.Store(true)
			for i := range 3 { // each is served stale and starts a refresh that fails
				r := do("/k")
				require.Equalf(t, "good 1", r.body, "request %d inside the window", i)
				require.Contains(t, r.header.Get("Cache-Status"), "detail=stale-while-revalidate")
			}
			require.EqualValues(t, 4, runs.Load(), "three refreshes ran")
			require.EqualValues(t, 3, c.Snapshot().Refreshes)

			if tc.clientStatus == 0 {
				return
			}
			clock.Advance(time.Minute) // past stale-while-revalidate, inside stale-if-error
			r := do("/k")
			require.Equal(t, tc.clientStatus, r.status)
			require.NotContains(t, r.header.Get("Cache-Status"), "stored")
			if tc.clientStatus == http.StatusOK {
				require.Equal(t, "good 1", r.body, "the entry the failed refreshes left is served on error")
				require.Contains(t, r.header.Get("Cache-Status"), "detail=")
			}

			failing.Store(false)
			r = do("/k")
			require.Equal(t, "good 6", r.body, "a refresh that succeeds replaces the entry")
			require.Equal(t, "good 6", do("/k").body)
		})
	}
}

// TestFailedRefreshOutsideStaleIfError: without stale-if-error, a failed refresh still leaves the
// entry, and once the window is over the error reaches the client that ran it without being stored.
func TestFailedRefreshOutsideStaleIfError(t *testing.T) {
	t.Parallel()
	var failing atomic.Bool
	var runs atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n := runs.Add(1)
		if failing.Load() {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "good %d", n)
	})
	_, clock, do, _ := freshServer(t, h, stampede.WithStaleWhileRevalidate(time.Minute))
	do("/k")
	clock.Advance(61 * time.Second)
	failing.Store(true)
	require.Equal(t, "good 1", do("/k").body) // starts a refresh that answers 500
	r := do("/k")
	require.Equal(t, "good 1", r.body, "the failed refresh did not replace the entry")
	require.Equal(t, "HIT", r.header.Get("X-Cache"))
	clock.Advance(time.Minute)
	r = do("/k")
	require.Equal(t, http.StatusInternalServerError, r.status)
	require.NotContains(t, r.header.Get("Cache-Status"), "stored")
	failing.Store(false)
	require.Equal(t, "good 5", do("/k").body, "the 500 was not stored")
}

// TestRefreshRevalidates: a background refresh sends the stale entry's validators, and a 304 makes the
// entry fresh again without a new body.
func TestRefreshRevalidates(t *testing.T) {
	t.Parallel()
	var runs, conditional atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			conditional.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprint(w, "body v1")
	})
	_, clock, do, _ := freshServer(t, h, stampede.WithStaleWhileRevalidate(time.Minute))
	do("/e")
	clock.Advance(61 * time.Second)
	require.Equal(t, "body v1", do("/e").body) // stale; the refresh revalidates
	require.EqualValues(t, 1, conditional.Load())
	r := do("/e")
	require.Equal(t, "body v1", r.body)
	require.Equal(t, "HIT", r.header.Get("X-Cache"))
	require.NotContains(t, r.header.Get("Cache-Status"), "stale-while-revalidate", "fresh again after the 304")
	require.EqualValues(t, 2, runs.Load())
}
