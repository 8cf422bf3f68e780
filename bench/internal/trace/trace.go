// Package trace replays a Zipf-distributed request trace against a slow origin handler, in process,
// through stampede or without it, and measures what reached the origin and how long it took.
//
// The trace follows cacheme's published benchmark: keys drawn from Zipf(s=1.001, v=10, imax=200,000)
// with a fixed seed, served by N concurrent workers that each take the next request of the trace until it
// is used up. Requests go through ServeHTTP on an httptest.ResponseRecorder, as trace_test.go in the root
// module does, so no network cost is measured here (the burst and wrk runs do that).
package trace

import (
	"context"
	"fmt"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// The Zipf parameters of cacheme's benchmark.
const (
	ZipfS    = 1.001
	ZipfV    = 10
	ZipfIMax = 200_000
)

// Keys returns n request paths whose keys follow Zipf(ZipfS, ZipfV, ZipfIMax) from seed. The same n
// and seed always give the same trace.
func Keys(n int, seed int64) []string {
	z := rand.NewZipf(rand.New(rand.NewSource(seed)), ZipfS, ZipfV, ZipfIMax)
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("/item/%d", z.Uint64())
	}
	return keys
}

// Distinct returns how many different paths keys holds.
func Distinct(keys []string) int {
	seen := make(map[string]struct{}, len(keys)/2)
	for _, k := range keys {
		seen[k] = struct{}{}
	}
	return len(seen)
}

// Config is one run of a trace.
type Config struct {
	Keys    []string      // the trace, from Keys
	Workers int           // concurrent workers
	Sleep   time.Duration // what the origin handler spends on each request
	// Middleware wraps the origin; nil runs the origin bare.
	Middleware func(http.Handler) http.Handler
	// Wait, when set, is called after the last response, outside the measured time, to let background
	// store writes finish (stampede's Cache.Wait).
	Wait func()
	// Progress, when set, is incremented once per completed request.
	Progress *atomic.Int64
}

// Result is what one run measured.
type Result struct {
	Requests   int
	Workers    int
	Sleep      time.Duration
	Wall       time.Duration // from the first request to the last response
	Distinct   int           // distinct keys in the trace
	Runs       int64         // origin handler runs
	Duplicates int64         // runs beyond the first for a key: Runs - keys that ran
	Wrong      int64         // responses whose body was not the origin's for that key
	P50, P99   time.Duration // request latency as the worker saw it
	// Ideal is the wall time of a perfect middleware on the same trace (see the function Ideal).
	Ideal time.Duration
	// CPU is the CPU time (user + system) the process spent during the run, all goroutines included.
	CPU time.Duration
}

// LowerBound is the least wall time any cache could achieve: every distinct key must be computed once,
// and the workers can compute at most Workers keys at a time.
func (r Result) LowerBound() time.Duration {
	return time.Duration(int64(r.Distinct) * int64(r.Sleep) / int64(r.Workers))
}

// Ratio is Wall over LowerBound.
func (r Result) Ratio() float64 {
	return float64(r.Wall) / float64(r.LowerBound())
}

// Run replays cfg's trace and reports what it measured.
func Run(cfg Config) Result {
	res := Result{Requests: len(cfg.Keys), Workers: cfg.Workers, Sleep: cfg.Sleep, Distinct: Distinct(cfg.Keys)}

	var mu sync.Mutex
	runs := make(map[string]int, res.Distinct)
	var total atomic.Int64
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(cfg.Sleep) // the origin's work
		mu.Lock()
		runs[r.URL.Path]++
		mu.Unlock()
		total.Add(1)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("item " + r.URL.Path))
	})
	if cfg.Middleware != nil {
		h = cfg.Middleware(h)
	}

	latency := make([]time.Duration, len(cfg.Keys))
	var next, wrong atomic.Int64
	var wg sync.WaitGroup
	// The target carries a host so the request is what a server would see; http.NewRequest is used
	// rather than httptest.NewRequest, which parses a request line through a 4 KiB bufio.Reader per call:
	// that was a tenth of the CPU of a run, the same with or without the middleware.
	ctx := context.Background()
	cpu0 := cpuTime()
	start := time.Now()
	for range cfg.Workers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(len(cfg.Keys)) {
					return
				}
				path := cfg.Keys[i]
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://bench.local"+path, nil)
				if err != nil {
					panic(err) // the paths come from Keys
				}
				rec := httptest.NewRecorder()
				t0 := time.Now()
				h.ServeHTTP(rec, req)
				latency[i] = time.Since(t0)
				if rec.Code != http.StatusOK || rec.Body.String() != "item "+path {
					wrong.Add(1)
				}
				if cfg.Progress != nil {
					cfg.Progress.Add(1)
				}
			}
		})
	}
	wg.Wait()
	res.Wall = time.Since(start)
	res.CPU = cpuTime() - cpu0
	if cfg.Wait != nil {
		cfg.Wait()
	}

	res.Ideal = Ideal(cfg.Keys, cfg.Workers, cfg.Sleep)
	res.Runs = total.Load()
	res.Wrong = wrong.Load()
	res.Duplicates = res.Runs - int64(len(runs))
	slices.Sort(latency)
	res.P50 = Percentile(latency, 0.50)
	res.P99 = Percentile(latency, 0.99)
	return res
}

// Percentile returns the q-quantile (0 < q <= 1) of sorted by the nearest-rank method.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
