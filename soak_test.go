package stampede_test

import (
	"bytes"
	"fmt"
	"math/rand"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
)

// soakChildEnv is set in the process TestSoak runs itself in.
const soakChildEnv = "STAMPEDE_SOAK_CHILD"

// runSoakChild runs TestSoak in a child process (the same test binary, so -race carries over) and fails
// with its output if it fails.
func runSoakChild(t *testing.T) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestSoak$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), soakChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		if strings.Contains(line, "soak_test.go") || strings.HasPrefix(strings.TrimSpace(line), "---") {
			t.Log(strings.TrimSpace(line))
		}
	}
	if err != nil {
		t.Fatalf("the soak in its own process failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestSoak") {
		t.Fatalf("the soak's process did not run it:\n%s", out)
	}
}

// soakDuration is how long TestSoak runs: $STAMPEDE_SOAK (a Go duration; `make soak` sets 60s), else 10 s.
func soakDuration(t *testing.T) time.Duration {
	t.Helper()
	if s := os.Getenv("STAMPEDE_SOAK"); s != "" {
		d, err := time.ParseDuration(s)
		require.NoError(t, err, "STAMPEDE_SOAK")
		return d
	}
	return 10 * time.Second
}

// soakBody is the page for key i: between 256 B and 16 KiB, its bytes derived from i, so a reply can be
// checked without keeping it.
func soakBody(i int) []byte {
	n := 256 + (i*7919)%(16<<10-256)
	b := bytes.Repeat([]byte{byte('a' + i%26)}, n)
	copy(b, fmt.Sprintf("key %d:", i))
	return b
}

// TestSoak: clients of a real server keep up a mix of hits (a hot set), misses (a warm set 20 times the
// budget, so entries are evicted all along) and one-off keys against a 4 MiB memory store. The live heap,
// sampled after a full GC, stays within the budget plus a fixed overhead and does not grow over time;
// goroutines do not accumulate; every reply is the right page. The heap must be this test's alone, so
// it runs in a process of its own: the test binary again, asked for this test only (what the package's
// other tests leave behind, their stores and background work, moved the baseline by tens of MiB).
func TestSoak(t *testing.T) {
	if os.Getenv(soakChildEnv) == "" {
		runSoakChild(t)
		return
	}
	const (
		budget = 4 << 20
		// overhead is what the process holds besides the store's budget: the key memo (4096 slots of
		// at most 256 bytes of material and a key), the runs in flight with their recorders and encoded
		// entries (up to 16 KiB each, a few per worker), the connections' buffers, and otter's table,
		// sketch and write buffer (whose pending tasks keep entries alive for a moment after they were
		// replaced or evicted: the spikes of up to the budget's size seen between drains). Peaks
		// measured on the 2-core machine: 11 to 17 MiB when quiet, 21 MiB at a load average of 10,
		// where the write buffer drains late; the growth check below is what finds a leak.
		overhead = 24 << 20
		workers  = 8
		hot      = 200    // keys
		warm     = 10_000 // keys, about 80 MiB of pages
	)
	d := soakDuration(t)
	store, err := memstore.New(budget)
	require.NoError(t, err)
	t.Cleanup(store.Close)
	c := stampede.New(nil, store, time.Hour)
	var runs atomic.Int64
	h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		var i int
		_, _ = fmt.Sscanf(r.URL.Path, "/k/%d", &i)
		_, _ = w.Write(soakBody(i))
	}))

	srv, client := newServer(t, h, workers)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	baseGoroutines := runtime.NumGoroutine()

	var requests, hits, wrong atomic.Int64
	var unique atomic.Int64
	unique.Store(1 << 30)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewSource(int64(w)))
			for {
				select {
				case <-stop:
					return
				default:
				}
				var i int
				switch p := rng.Intn(100); {
				case p < 60:
					i = rng.Intn(hot)
				case p < 90:
					i = hot + rng.Intn(warm)
				default:
					i = int(unique.Add(1))
				}
				r := get(t.Context(), client, fmt.Sprintf("%s/k/%d", srv.URL, i), nil)
				requests.Add(1)
				if r.header.Get("X-Cache") == "HIT" {
					hits.Add(1)
				}
				if r.err != nil || r.status != 200 || r.body != string(soakBody(i)) {
					wrong.Add(1)
				}
			}
		})
	}

	type point struct {
		at         time.Duration
		heap       uint64 // live heap after a full GC, above the baseline
		storeBytes int64
		goroutines int
	}
	var points []point
	interval := max(d/40, 100*time.Millisecond)
	start := time.Now()
	for time.Since(start) < d {
		time.Sleep(interval) // the sampling period, not synchronisation
		runtime.GC()
		runtime.ReadMemStats(&ms)
		points = append(points, point{time.Since(start), ms.HeapAlloc - min(base, ms.HeapAlloc), store.Bytes(), runtime.NumGoroutine()})
	}
	close(stop)
	wg.Wait()
	c.Wait()

	require.Zero(t, wrong.Load(), "wrong replies")
	var peak uint64
	for _, p := range points {
		peak = max(peak, p.heap)
	}
	// Growth: the mean of the last third of the samples against the middle third (the first third is the
	// warm-up, while the store fills).
	mean := func(ps []point) float64 {
		var s float64
		for _, p := range ps {
			s += float64(p.heap)
		}
		return s / float64(len(ps))
	}
	third := len(points) / 3
	require.Positive(t, third)
	mid, last := mean(points[third:2*third]), mean(points[2*third:])
	mib := func(v float64) string { return fmt.Sprintf("%.1f MiB", v/(1<<20)) }
	t.Logf("soak %v, %d workers: %d requests (%.0f/s), %d hits (%.0f%%), %d handler runs",
		d, workers, requests.Load(), float64(requests.Load())/d.Seconds(), hits.Load(),
		100*float64(hits.Load())/float64(requests.Load()), runs.Load())
	t.Logf("live heap above baseline (%s): peak %s, middle third %s, last third %s; store budget %s, store held at end %s; goroutines %d -> %d",
		mib(float64(base)), mib(float64(peak)), mib(mid), mib(last), mib(budget), mib(float64(store.Bytes())),
		baseGoroutines, points[len(points)-1].goroutines)
	assert.LessOrEqual(t, peak, uint64(budget+overhead), "peak live heap over budget + overhead")
	assert.LessOrEqual(t, last-mid, float64(2<<20), "the live heap grows over time")
	for _, p := range points {
		// Each client connection costs a server goroutine and two transport goroutines, and each store
		// write a short-lived goroutine of its own.
		assert.LessOrEqual(t, p.goroutines, baseGoroutines+4*workers+32, "goroutines at %v", p.at)
		assert.LessOrEqual(t, p.storeBytes, int64(budget*17/16+workers*(16<<10+64+memstore.Overhead)), "store bytes at %v", p.at)
	}
	assert.Positive(t, hits.Load())
}
