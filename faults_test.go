package stampede_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/redisstore"
	"github.com/seed-a1426414/stampede/internal/entry"
	"github.com/seed-a1426414/stampede/internal/redistest"
)

// patience is how long a test waits for something to happen (a burst to finish, caching to resume after
// a fault) before it calls it hung. Nothing in the tests asserts how fast things happen: a loaded 2-core
// machine takes seconds for what takes milliseconds on a quiet one. Latency is measured by the
// benchmarks (make bench).
const patience = 2 * time.Minute

// waitFor polls cond until it holds, failing the test after patience with what it waited for.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %v", what, patience)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sample is one request of a load run.
type sample struct {
	start   time.Duration // since the load began
	latency time.Duration
	xcache  string
	err     error
}

// outageLoad is clients of a server that keep requesting hot keys (mostly hits), expiring keys
// (misses all along) and one-off keys until stopped, checking every body and recording every request.
type outageLoad struct {
	begin  time.Time
	stop   chan struct{}
	wg     sync.WaitGroup
	unique atomic.Int64

	mu      sync.Mutex
	samples []sample // in the order they finished; guarded by mu
	wrong   []string // guarded by mu
}

// startOutageLoad starts workers clients of url. Keys under /warm/ must expire within seconds (the
// cache's TTL) so that they keep missing.
func startOutageLoad(ctx context.Context, client *http.Client, url string, workers int) *outageLoad {
	l := &outageLoad{begin: time.Now(), stop: make(chan struct{})}
	for w := range workers {
		l.wg.Go(func() {
			rng := rand.New(rand.NewSource(int64(w)))
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				var path string
				switch p := rng.Intn(100); {
				case p < 70:
					path = fmt.Sprintf("/hot/%d", rng.Intn(50)) // mostly hits
				case p < 95:
					path = fmt.Sprintf("/warm/%d", rng.Intn(2000)) // expire soon: misses all along
				default:
					path = fmt.Sprintf("/once/%d", l.unique.Add(1)) // never seen before
				}
				start := time.Now()
				r := get(ctx, client, url+path, nil)
				s := sample{start: start.Sub(l.begin), latency: time.Since(start), xcache: r.header.Get("X-Cache"), err: r.err}
				if r.err == nil && (r.status != http.StatusOK || r.body != "body of "+path) {
					s.err = fmt.Errorf("%s: status %d body %q", path, r.status, r.body)
				}
				l.mu.Lock()
				l.samples = append(l.samples, s)
				if s.err != nil {
					l.wrong = append(l.wrong, s.err.Error())
				}
				l.mu.Unlock()
			}
		})
	}
	return l
}

// now is the time since the load began, the clock of the samples' start.
func (l *outageLoad) now() time.Duration { return time.Since(l.begin) }

// end stops the clients and waits for them.
func (l *outageLoad) end() {
	close(l.stop)
	l.wg.Wait()
}

// count returns how many of the finished requests that started in [from, to) match xcache ("" for
// any).
func (l *outageLoad) count(from, to time.Duration, xcache string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.samples {
		if s.start >= from && s.start < to && (xcache == "" || s.xcache == xcache) {
			n++
		}
	}
	return n
}

// latencies returns the sorted latencies of the requests that started in [from, to).
func (l *outageLoad) latencies(from, to time.Duration) []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ds []time.Duration
	for _, s := range l.samples {
		if s.start >= from && s.start < to {
			ds = append(ds, s.latency)
		}
	}
	slices.Sort(ds)
	return ds
}

// failures returns the failed or wrong requests so far.
func (l *outageLoad) failures() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.wrong)
}

// forever is "until the end of the load" for count and latencies.
const forever = time.Duration(math.MaxInt64)

// outageRig is a middleware over a real Redis behind a real server, configured as the outage tests and
// benchmarks need it: a store timeout of 100 ms (so a fault costs each request little), a breaker, a
// TTL of 2 s (so /warm/ keys keep missing) and a handler that takes 10 ms.
type outageRig struct {
	srv    *redistest.Server
	c      *stampede.Cache
	hs     *httptest.Server
	client *http.Client
	logs   *logBuffer
}

const (
	outageStoreTimeout = 100 * time.Millisecond
	outageHandlerTime  = 10 * time.Millisecond
)

func newOutageRig(tb testing.TB, workers int) *outageRig {
	srv := redistest.Start(tb)
	logs := &logBuffer{}
	store := closing(tb, redisstore.New(outageClient(tb, srv.Addr(), 64), redisstore.WithTimeout(outageStoreTimeout)))
	c := stampede.New(newLogger(logs), store, 2*time.Second, stampede.WithStoreTimeout(outageStoreTimeout),
		stampede.WithCircuitBreaker(5, 100*time.Millisecond))
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(outageHandlerTime) // the origin's work
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "body of %s", r.URL.RequestURI())
	})
	hs, client := newServer(tb, c.Handler(origin), workers)
	return &outageRig{srv: srv, c: c, hs: hs, client: client, logs: logs}
}

// fault is one way Redis fails in the outage tests, and how it ends.
type fault struct {
	name       string
	begin, end func(*redistest.Server)
}

var faults = []fault{
	{"killed", (*redistest.Server).Stop, (*redistest.Server).Restart},
	{"stalled", (*redistest.Server).Freeze, (*redistest.Server).Thaw},
}

// TestRedisOutageUnderLoad: clients keep requesting (hot keys, expiring keys, one-off keys) while Redis
// is killed and restarted, and later stalled (the process stopped) and resumed. No client request
// fails, every body is the right one, the circuit breaker opens during each fault, and caching resumes
// by itself after each (docs/behaviour.md §7.1). Each phase ends on what happened, not on the clock: 200 requests
// served during the fault with the breaker open; then a request started after the fault ended served
// from Redis (HIT). The latency of the requests during each fault is logged; BenchmarkRedisOutage
// measures it.
func TestRedisOutageUnderLoad(t *testing.T) {
	t.Parallel()
	workers := 32
	if raceEnabled {
		workers = 16
	}
	rig := newOutageRig(t, workers)
	load := startOutageLoad(t.Context(), rig.client, rig.hs.URL, workers)
	waitFor(t, "hits before the faults", func() bool { return load.count(0, forever, "HIT") >= 50 })

	type window struct{ from, to time.Duration }
	var windows []window
	for _, f := range faults {
		trips := rig.c.Snapshot().BreakerTrips
		from := load.now()
		f.begin(rig.srv)
		waitFor(t, "200 requests served while Redis is "+f.name+", and the breaker open", func() bool {
			return rig.c.Snapshot().BreakerTrips > trips && load.count(from, forever, "") >= 200
		})
		f.end(rig.srv)
		to := load.now()
		windows = append(windows, window{from, to})
		waitFor(t, "caching resumed after Redis was "+f.name, func() bool { return load.count(to, forever, "HIT") > 0 })
	}
	load.end()
	rig.c.Wait()

	require.Empty(t, load.failures(), "failed or wrong client requests")
	for i, f := range faults {
		w := windows[i]
		ds := load.latencies(w.from, w.to)
		t.Logf("Redis %s for %v: %d requests served, latency p50 %v, p99 %v, max %v (store timeout %v + handler %v)",
			f.name, (w.to - w.from).Round(time.Millisecond), len(ds), ds[len(ds)/2], ds[len(ds)*99/100], ds[len(ds)-1],
			outageStoreTimeout, outageHandlerTime)
	}
	out := rig.logs.String()
	assert.Contains(t, out, "circuit breaker open", "the breaker opened during the outage")
	assert.Contains(t, out, "circuit breaker closed", "and closed after it")
}

// BenchmarkRedisOutage measures the latency of requests while Redis is killed, or stalled, for one
// second under a steady load (hot keys, expiring keys, one-off keys; 32 clients): p50, p99 and max
// over the requests that started during the fault, beside the bound docs/behaviour.md §7.1 implies (one store
// timeout plus the handler's time). Each op is one fault followed by caching resuming; ns/op is that
// cycle's length.
func BenchmarkRedisOutage(b *testing.B) {
	const workers = 32
	// go-redis logs every failed dial while Redis is down; the numbers are the report here. Tests run
	// before benchmarks, so this silences no test.
	redis.SetLogger(quietRedisLog{})
	for _, f := range faults {
		b.Run(f.name, func(b *testing.B) {
			rig := newOutageRig(b, workers)
			load := startOutageLoad(b.Context(), rig.client, rig.hs.URL, workers)
			defer load.end()
			waitFor(b, "hits before the fault", func() bool { return load.count(0, forever, "HIT") >= 50 })
			var ds []time.Duration
			for b.Loop() {
				from := load.now()
				f.begin(rig.srv)
				time.Sleep(time.Second) // the fault's length
				f.end(rig.srv)
				to := load.now()
				waitFor(b, "caching resumed", func() bool { return load.count(to, forever, "HIT") > 0 })
				ds = append(ds, load.latencies(from, to)...)
			}
			b.StopTimer()
			if wrong := load.failures(); len(wrong) > 0 {
				b.Fatalf("%d failed or wrong requests, the first: %s", len(wrong), wrong[0])
			}
			slices.Sort(ds)
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
			b.ReportMetric(ms(ds[len(ds)/2]), "p50-ms")
			b.ReportMetric(ms(ds[len(ds)*99/100]), "p99-ms")
			b.ReportMetric(ms(ds[len(ds)-1]), "max-ms")
			b.ReportMetric(ms(outageStoreTimeout+outageHandlerTime), "bound-ms")
		})
	}
}

// recoverer is the usual outermost panic handler: a 500 for a panic, and http.ErrAbortHandler passed on
// so net/http aborts the response silently.
func recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler { //nolint:errorlint // net/http compares with ==
					panic(p)
				}
				http.Error(w, "recovered", http.StatusInternalServerError)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// TestPanicsAndTimeoutsUnderLoad: many clients at once on keys whose handler panics (with a value or
// with http.ErrAbortHandler), overruns the compute timeout, or whose clients give up mid-run, mixed with
// healthy keys. No request hangs, every healthy request is right, nothing but healthy pages is stored, every
// handler run ends, and no goroutine is left behind (docs/behaviour.md §5.3, §5.4, §5.8).
// Not parallel, so that the goroutine check at its end sees only its own goroutines.
func TestPanicsAndTimeoutsUnderLoad(t *testing.T) {
	before := goleak.IgnoreCurrent()
	const computeTimeout = 50 * time.Millisecond
	store := newMem(t)
	c := stampede.New(nil, store, time.Minute, stampede.WithComputeTimeout(computeTimeout))
	var started, finished atomic.Int64
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started.Add(1)
		defer finished.Add(1)
		kind, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		switch kind {
		case "panic":
			time.Sleep(5 * time.Millisecond) // long enough for others to join
			panic("boom")
		case "abort":
			time.Sleep(5 * time.Millisecond)
			panic(http.ErrAbortHandler)
		case "slow":
			select {
			case <-r.Context().Done(): // the compute timeout
				http.Error(w, "compute timeout", http.StatusGatewayTimeout)
				return
			case <-time.After(patience):
				t.Errorf("%s: the compute timeout did not end the run", r.URL.Path)
			}
		case "leave":
			time.Sleep(30 * time.Millisecond) // clients with a 5 ms deadline leave before this
		}
		fmt.Fprintf(w, "ok %s", r.URL.Path)
	})
	hs := httptest.NewUnstartedServer(recoverer(c.Handler(origin)))
	hs.Config.ErrorLog = log.New(io.Discard, "", 0) // aborted responses are expected here
	hs.Start()
	t.Cleanup(hs.Close)
	client := hs.Client()
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = 64

	const requests, workers = 3000, 48
	kinds := []string{"ok", "ok", "ok", "panic", "abort", "slow", "leave"}
	var next atomic.Int64
	var mu sync.Mutex
	outcomes := map[string]int{}
	var wrong []string
	var wg sync.WaitGroup
	done := make(chan struct{})
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= requests {
					return
				}
				kind := kinds[i%len(kinds)]
				path := fmt.Sprintf("/%s/%d", kind, i/len(kinds)%20)
				ctx, cancel := context.WithCancel(context.Background())
				leaving := kind == "leave" && i%2 == 0
				if leaving {
					ctx, cancel = context.WithTimeout(context.Background(), 5*time.Millisecond)
				}
				if kind == "slow" {
					// Waiters released at the compute timeout run the handler themselves, with their
					// own request's context: this client's deadline ends those runs.
					ctx, cancel = context.WithTimeout(context.Background(), 20*computeTimeout)
				}
				r := get(ctx, client, hs.URL+path, nil)
				cancel()
				var outcome string
				switch {
				case (leaving || kind == "slow") && r.err != nil && errors.Is(r.err, context.DeadlineExceeded):
					outcome = "client left"
				case kind == "abort" && r.err != nil:
					outcome = "aborted"
				case r.err != nil:
					outcome = "error: " + r.err.Error()
				case kind == "panic" && r.status == 500 && r.body == "recovered\n":
					outcome = "recovered"
				case kind == "slow" && r.status == 504 && r.body == "compute timeout\n":
					outcome = "timed out"
				case (kind == "ok" || kind == "leave") && r.status == 200 && r.body == "ok "+path:
					outcome = "ok"
				default:
					outcome = fmt.Sprintf("wrong: %s %d %q", path, r.status, r.body)
				}
				mu.Lock()
				outcomes[kind+" "+outcome]++
				if strings.HasPrefix(outcome, "wrong") || strings.HasPrefix(outcome, "error") {
					wrong = append(wrong, outcome)
				}
				mu.Unlock()
			}
		})
	}
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(patience):
		t.Fatal("requests hang")
	}
	c.Wait()
	t.Logf("outcomes: %v", outcomes)
	assert.Empty(t, wrong)
	assert.Positive(t, outcomes["panic recovered"])
	assert.Positive(t, outcomes["slow timed out"])
	assert.Positive(t, outcomes["leave client left"])
	assert.Positive(t, outcomes["abort aborted"])

	// Every run ended, the detached ones of clients that left included.
	waitFor(t, "every handler run ended", func() bool { return started.Load() == finished.Load() })
	// Only healthy pages are stored, and each is the right one.
	for _, kind := range []string{"ok", "panic", "abort", "slow", "leave"} {
		for i := range 20 {
			path := fmt.Sprintf("/%s/%d", kind, i)
			req, _ := http.NewRequest("GET", hs.URL+path, nil)
			b, found, err := store.Get(t.Context(), stampede.StoreKey(c, req))
			require.NoError(t, err)
			if kind != "ok" && kind != "leave" {
				assert.False(t, found, "%s must not be stored", path)
				continue
			}
			if found {
				e, err := entry.Decode(b)
				require.NoError(t, err)
				assert.Equal(t, 200, e.Status)
				assert.Equal(t, "ok "+path, string(e.Body))
			}
		}
	}
	hs.Close()
	client.CloseIdleConnections()
	store.Close()
	goleak.VerifyNone(t, before)
}

// quietRedisLog is a go-redis logger that drops everything.
type quietRedisLog struct{}

func (quietRedisLog) Printf(context.Context, string, ...any) {}
