package stampede_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed-a1426414/stampede"
)

// Abuse: inputs far beyond what a page needs. The middleware must stay correct (each request gets its own
// page, nothing merges requests that differ), keep store keys short, keep its memory bounded, and never
// panic. The server's own header limit is raised so that these requests reach the middleware at all
// (net/http's default of 1 MiB would answer 431 before it).

// newBigServer is newServer with an 8 MiB request header limit.
func newBigServer(t *testing.T, h http.Handler) (*httptest.Server, *http.Client) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.MaxHeaderBytes = 8 << 20
	srv.Start()
	t.Cleanup(srv.Close)
	client := srv.Client()
	t.Cleanup(client.CloseIdleConnections)
	return srv, client
}

// TestAbuseHugeRequests: 1 MiB URLs, 10,000 query parameters, multi-MiB header values, keyed or
// unkeyed or in Vary, and thousands of headers: correct pages, bounded keys, sharing exactly where
// docs/behaviour.md §3.1 says the keys are equal.
func TestAbuseHugeRequests(t *testing.T) {
	t.Parallel()
	var params []string
	for i := range 10_000 {
		params = append(params, fmt.Sprintf("p%05d=%d", i, i))
	}
	reversed := make([]string, len(params))
	for i, p := range params {
		reversed[len(params)-1-i] = p
	}
	changed := append([]string{}, params...)
	changed[5000] = "p05000=x"
	big := strings.Repeat("h", 2<<20)
	headers := func(n int) func(r *http.Request) {
		return func(r *http.Request) {
			for i := range n {
				r.Header.Set(fmt.Sprintf("X-H%d", i), "v")
			}
		}
	}
	setHeader := func(name, value string) func(r *http.Request) {
		return func(r *http.Request) { r.Header.Set(name, value) }
	}
	tests := []struct {
		name        string
		opts        []stampede.Option
		vary        string
		first       string
		mod1        func(*http.Request)
		second      string
		mod2        func(*http.Request)
		sameKey     bool // the two requests have the same key
		shared      bool // and the second gets the first's stored page (it also matches the Vary)
		wantSummary string
	}{
		{name: "1 MiB path, same", first: "/p/" + strings.Repeat("a", 1<<20), second: "/p/" + strings.Repeat("a", 1<<20),
			sameKey: true, shared: true, wantSummary: fmt.Sprintf("path %d", 1<<20+3)},
		{name: "1 MiB path, last byte differs", first: "/p/" + strings.Repeat("a", 1<<20) + "1",
			second: "/p/" + strings.Repeat("a", 1<<20) + "2", wantSummary: fmt.Sprintf("path %d", 1<<20+4)},
		{name: "1 MiB query value, last byte differs", first: "/q?v=" + strings.Repeat("b", 1<<20) + "1",
			second: "/q?v=" + strings.Repeat("b", 1<<20) + "2", wantSummary: "params 1"},
		{name: "10,000 parameters reordered", first: "/q?" + strings.Join(params, "&"),
			second: "/q?" + strings.Join(reversed, "&"), sameKey: true, shared: true, wantSummary: "params 10000"},
		{name: "10,000 parameters, one value differs", first: "/q?" + strings.Join(params, "&"),
			second: "/q?" + strings.Join(changed, "&"), wantSummary: "params 10000"},
		{name: "2 MiB unkeyed header", first: "/h", mod1: setHeader("X-Big", big+"1"), second: "/h",
			mod2: setHeader("X-Big", big+"2"), sameKey: true, shared: true, wantSummary: "x-big 2097153"},
		{name: "2 MiB keyed header", opts: []stampede.Option{stampede.WithHTTPCacheKeyRequestHeaders([]string{"X-Big"})},
			first: "/h", mod1: setHeader("X-Big", big+"1"), second: "/h", mod2: setHeader("X-Big", big+"2"),
			wantSummary: "x-big 2097153"},
		{name: "2 MiB header in Vary, differs", vary: "X-Big", first: "/h", mod1: setHeader("X-Big", big+"1"),
			second: "/h", mod2: setHeader("X-Big", big+"2"), sameKey: true, wantSummary: "x-big 2097153"},
		{name: "2 MiB header in Vary, same", vary: "X-Big", first: "/h", mod1: setHeader("X-Big", big),
			second: "/h", mod2: setHeader("X-Big", big), sameKey: true, shared: true, wantSummary: "x-big 2097152"},
		{name: "5,000 headers", first: "/many", mod1: headers(5000), second: "/many", mod2: headers(5000),
			sameKey: true, shared: true, wantSummary: "headers 5002"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := stampede.New(nil, newMem(t), time.Minute, tt.opts...)
			var runs atomic.Int64
			srv, client := newBigServer(t, c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := runs.Add(1)
				if tt.vary != "" {
					w.Header().Set("Vary", tt.vary)
				}
				var summary string
				switch {
				case strings.HasPrefix(r.URL.Path, "/p/"):
					summary = fmt.Sprintf("path %d", len(r.URL.Path))
				case r.URL.Path == "/q":
					summary = fmt.Sprintf("params %d", len(r.URL.Query()))
				case r.URL.Path == "/h":
					summary = fmt.Sprintf("x-big %d", len(r.Header.Get("X-Big")))
				default:
					summary = fmt.Sprintf("headers %d", len(r.Header))
				}
				fmt.Fprintf(w, "%s run %d", summary, n)
			})))
			first := get(t.Context(), client, srv.URL+tt.first, tt.mod1)
			c.Wait()
			second := get(t.Context(), client, srv.URL+tt.second, tt.mod2)
			c.Wait()
			require.NoError(t, first.err)
			require.NoError(t, second.err)
			require.Equal(t, http.StatusOK, first.status)
			assert.Equal(t, tt.wantSummary+" run 1", first.body)
			if tt.shared {
				assert.Equal(t, first.body, second.body)
				assert.Equal(t, "HIT", second.header.Get("X-Cache"))
			} else {
				assert.True(t, strings.HasSuffix(second.body, "run 2"), "second request ran the handler: %q", second.body)
				assert.Equal(t, "MISS", second.header.Get("X-Cache"))
			}

			r1, _ := http.NewRequest("GET", srv.URL+tt.first, nil)
			r2, _ := http.NewRequest("GET", srv.URL+tt.second, nil)
			if tt.mod1 != nil {
				tt.mod1(r1)
				tt.mod2(r2)
			}
			k1, k2 := stampede.StoreKey(c, r1), stampede.StoreKey(c, r2)
			assert.Less(t, len(k1), 64, "store keys are bounded whatever the request")
			assert.Equal(t, tt.sameKey, k1 == k2)
		})
	}
}

// peakHeap samples the heap every millisecond while fn runs and returns the peak of HeapInuse above
// what it was before, and the bytes allocated meanwhile. Sampling is not synchronisation: it only
// observes. Callers must not run in parallel with other tests.
func peakHeap(fn func()) (peak, allocated uint64) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base, total0 := ms.HeapInuse, ms.TotalAlloc
	var max atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var m runtime.MemStats
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > base && m.HeapInuse-base > max.Load() {
				max.Store(m.HeapInuse - base)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	fn()
	close(stop)
	wg.Wait()
	runtime.ReadMemStats(&ms)
	return max.Load(), ms.TotalAlloc - total0
}

// patternReader yields n bytes of a fixed pattern without holding them.
type patternReader struct{ n, off int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.n-p.off)]
	for i := range b {
		b[i] = byte((p.off + int64(i)) % 251)
	}
	p.off += int64(len(b))
	return len(b), nil
}

func patternSum(n int64) string {
	h := sha256.New()
	_, _ = io.Copy(h, &patternReader{n: n})
	return hex.EncodeToString(h.Sum(nil))
}

// TestAbuseKeyedBodyOverLimit: POST is opted in, so its body is key material; a 64 MiB body exceeds the
// 64 KiB key-body limit and passes through (docs/behaviour.md §2.2): the handler reads every byte unchanged, nothing is
// stored, and the middleware buffers at most the limit. Not parallel: it measures the heap.
func TestAbuseKeyedBodyOverLimit(t *testing.T) {
	const limit, size = 64 << 10, 64 << 20
	store := newMem(t)
	c := stampede.New(nil, store, time.Minute, stampede.WithMethods("GET", "HEAD", "POST"), stampede.WithKeyBodyLimit(limit))
	var runs atomic.Int64
	srv, client := newServer(t, c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "read %d sha256 %x", n, h.Sum(nil))
	})), 2)
	post := func(n int64) reply {
		req, err := http.NewRequestWithContext(t.Context(), "POST", srv.URL+"/search", &patternReader{n: n})
		require.NoError(t, err)
		resp, err := client.Do(req)
		if err != nil {
			return reply{err: err}
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return reply{status: resp.StatusCode, header: resp.Header, body: string(b), err: err}
	}

	var big reply
	peak, allocated := peakHeap(func() { big = post(size) })
	require.NoError(t, big.err)
	assert.Equal(t, fmt.Sprintf("read %d sha256 %s", size, patternSum(size)), big.body, "the handler read the whole body unchanged")
	assert.Equal(t, "BYPASS", big.header.Get("X-Cache"))
	t.Logf("64 MiB POST over a 64 KiB key-body limit: peak heap +%.1f MiB, %.1f MiB allocated",
		float64(peak)/(1<<20), float64(allocated)/(1<<20))
	assert.Less(t, peak, uint64(16<<20), "the body must stream, not be buffered")
	assert.Less(t, allocated, uint64(32<<20), "the body must stream, not be buffered")

	// At the limit the body is keyed: the same body is a hit, one byte more passes through.
	atLimit := post(limit)
	c.Wait()
	again := post(limit)
	over := post(limit + 1)
	c.Wait()
	assert.Equal(t, "MISS", atLimit.header.Get("X-Cache"))
	assert.Equal(t, "HIT", again.header.Get("X-Cache"))
	assert.Equal(t, atLimit.body, again.body)
	assert.Equal(t, "BYPASS", over.header.Get("X-Cache"))
	assert.Equal(t, fmt.Sprintf("read %d sha256 %s", limit+1, patternSum(limit+1)), over.body)
	assert.Equal(t, 1, store.Len(), "only the keyed body's response is stored")
	assert.EqualValues(t, 3, runs.Load())
}

// TestAbuseHugeResponse: a handler streams 100 MiB, with no Content-Length, while a second request waits
// on its run. The leading client gets all of it, byte for byte. The waiter is streamed the response as
// it comes; when it outgrows WithMaxBodyBytes (4 MiB here) the recording ends there, and the waiter,
// which was sent part of it, is cut off rather than sent a shortened body as if whole. The key goes
// hit-for-pass, so the next request runs the handler itself and gets all of it (docs/behaviour.md §4,
// §5.6). Nothing is stored; the heap stays far below the bytes served. Not parallel: it measures the heap.
func TestAbuseHugeResponse(t *testing.T) {
	const size, chunk, limit = 100 << 20, 32 << 10, 4 << 20
	store := newMem(t)
	// The hit-for-pass window must outlast the two 100 MiB streams before the third request: on a loaded
	// machine under -race they have taken more than the default 10 s.
	c := stampede.New(nil, store, time.Minute, stampede.WithMaxBodyBytes(limit), stampede.WithPassTTL(time.Hour))
	joins := newJoinCounter(1)
	stampede.SetJoinHook(c, joins.hook)
	entered := make(chan struct{}, 2)
	var runs atomic.Int64
	srv, client := newServer(t, c.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if runs.Add(1) == 1 {
			entered <- struct{}{}
			<-joins.reached // the second request waits on this run before it writes anything
		}
		buf := make([]byte, chunk)
		p := &patternReader{n: size}
		for {
			n, err := p.Read(buf)
			if err != nil {
				return
			}
			if _, err := w.Write(buf[:n]); err != nil {
				return
			}
		}
	})), 2)
	// read checks a body against the pattern as it arrives, holding one chunk at a time.
	read := func(body io.Reader) (int64, error) {
		want := &patternReader{n: size}
		got, exp := make([]byte, chunk), make([]byte, chunk)
		var total int64
		for {
			n, err := io.ReadFull(body, got)
			if n > 0 {
				m, _ := io.ReadFull(want, exp[:n])
				if m != n || !bytes.Equal(got[:n], exp[:n]) {
					return total, fmt.Errorf("body differs from the handler's bytes near offset %d", total)
				}
				total += int64(n)
			}
			if err == io.EOF || (err == io.ErrUnexpectedEOF && total == size) {
				return total, nil
			}
			if err != nil {
				return total, err
			}
		}
	}
	type result struct {
		n      int64
		xcache string
		err    error
	}
	fetch := func() result {
		resp, err := client.Get(srv.URL + "/huge")
		if err != nil {
			return result{err: err}
		}
		defer resp.Body.Close()
		n, err := read(resp.Body)
		return result{n, resp.Header.Get("X-Cache"), err}
	}
	var leader, waiter, after result
	peak, allocated := peakHeap(func() {
		done := make(chan result)
		go func() { done <- fetch() }()
		<-entered
		go func() { done <- fetch() }()
		a, b := <-done, <-done
		if a.xcache == "MISS" {
			leader, waiter = a, b
		} else {
			leader, waiter = b, a
		}
		after = fetch()
	})
	c.Wait()
	require.NoError(t, leader.err)
	assert.EqualValues(t, size, leader.n, "the leading client gets all of it")
	assert.Equal(t, "MISS", leader.xcache)
	assert.Equal(t, "COALESCED", waiter.xcache)
	// A waiter that keeps up gets the whole body; one that fell behind the window is cut off with an
	// error, never sent a shortened body as whole (behaviour §5.8).
	if waiter.err == nil {
		assert.EqualValues(t, size, waiter.n, "a waiter that got no error got all of it")
	} else {
		assert.Less(t, waiter.n, int64(size))
	}
	require.NoError(t, after.err)
	assert.EqualValues(t, size, after.n, "the next request runs the handler itself and gets all of it")
	assert.Equal(t, "BYPASS", after.xcache)
	assert.EqualValues(t, 2, runs.Load())
	assert.Zero(t, store.Len(), "a response over the limit is not stored")
	t.Logf("2 x 100 MiB streamed with a 4 MiB body limit: peak heap +%.1f MiB, %.1f MiB allocated",
		float64(peak)/(1<<20), float64(allocated)/(1<<20))
	// The waiter reads from a window of the last body-limit bytes (behaviour §5.8), so what the run holds
	// stays within a few limits; the window is not reused yet, so what streams through it is allocated
	// once (about 1.1 times the bytes streamed), which the second bound caps.
	assert.Less(t, peak, uint64(64<<20), "peak heap while streaming 200 MiB")
	assert.Less(t, allocated, uint64(3*size), "allocation proportional to what streams, never a copy per waiter")
}
