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
// sleeps 10 ms: the handler runs exactly once per distinct key (docs/behaviour.md §5.2).
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
	runs := map[string][][2]time.Duration{} // when each run of a path began and ended; guarded by mu
	var total atomic.Int64
	begin := time.Now()
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Since(begin)
		time.Sleep(10 * time.Millisecond) // the origin's work, not synchronisation
		mu.Lock()
		runs[r.URL.Path] = append(runs[r.URL.Path], [2]time.Duration{start, time.Since(begin)})
		mu.Unlock()
		total.Add(1)
		fmt.Fprintf(w, "item %s", r.URL.Path)
	})
	// Under -race on two busy cores, with 10,000 goroutines, a run of a 10 ms handler has taken more than
	// the default 30 s compute timeout; such a run is detached and the key's next request runs it again,
	// correctly (docs/behaviour.md §5.8). This test is about coalescing, so no run may outlast its compute timeout.
	c := stampede.New(nil, newMem(t), time.Hour, stampede.WithComputeTimeout(time.Hour))
	h := c.Handler(origin)

	var next, wrong, slowest atomic.Int64
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
				start := time.Now()
				h.ServeHTTP(rec, req)
				for d := int64(time.Since(start)); ; {
					old := slowest.Load()
					if d <= old || slowest.CompareAndSwap(old, d) {
						break
					}
				}
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
	var longest time.Duration
	for path, rs := range runs {
		for _, r := range rs {
			longest = max(longest, r[1]-r[0])
		}
		if len(rs) != 1 {
			t.Errorf("%s ran %d times (began, ended since the start: %v)", path, len(rs), rs)
		}
	}
	t.Logf("longest handler run (a 10 ms sleep): %v; slowest request: %v", longest, time.Duration(slowest.Load()))
	t.Logf("requests=%d workers=%d distinct=%d handler runs=%d", requests, workers, len(distinct), total.Load())
}
