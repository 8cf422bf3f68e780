package stampede_test

import (
	"fmt"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed-a1426414/stampede"
)

// zipfTrace returns n request paths whose keys follow Zipf(s, v, imax) from a fixed seed, the
// distribution of cacheme's published benchmark.
func zipfTrace(n int, seed int64) []string {
	z := rand.NewZipf(rand.New(rand.NewSource(seed)), 1.001, 10, 200_000)
	trace := make([]string, n)
	for i := range trace {
		trace[i] = fmt.Sprintf("/item/%d", z.Uint64())
	}
	return trace
}

// TestZeroDuplicateLoads: 200,000 requests over Zipf keys, 10,000 concurrent workers, a handler that
// sleeps 10 ms: the handler runs exactly once per distinct key (SPEC §5.2).
func TestZeroDuplicateLoads(t *testing.T) {
	requests, workers := 200_000, 10_000
	if testing.Short() {
		requests, workers = 20_000, 1_000
	}
	trace := zipfTrace(requests, 42)
	distinct := map[string]bool{}
	for _, p := range trace {
		distinct[p] = true
	}

	var mu sync.Mutex
	runs := map[string]int{}
	var total atomic.Int64
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(10 * time.Millisecond) // the origin's work, not synchronisation
		mu.Lock()
		runs[r.URL.Path]++
		mu.Unlock()
		total.Add(1)
		fmt.Fprintf(w, "item %s", r.URL.Path)
	})
	c := stampede.New(nil, newMem(t), time.Hour)
	h := c.Handler(origin)

	var next atomic.Int64
	var wrong atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(len(trace)) {
					return
				}
				req := httptest.NewRequest(http.MethodGet, trace[i], nil)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Body.String() != "item "+trace[i] {
					wrong.Add(1)
				}
			}
		})
	}
	wg.Wait()
	c.Wait()

	logSnapshot(t, c)
	require.Zero(t, wrong.Load(), "responses with the wrong body")
	assert.Equal(t, int64(len(distinct)), total.Load(), "handler runs must equal distinct keys")
	for path, n := range runs {
		if n != 1 {
			t.Errorf("%s ran %d times", path, n)
		}
	}
	t.Logf("requests=%d workers=%d distinct=%d handler runs=%d", requests, workers, len(distinct), total.Load())
}
