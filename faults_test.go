package stampede_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/redisstore"
	"github.com/seed-a1426414/stampede/internal/entry"
	"github.com/seed-a1426414/stampede/internal/redistest"
)

// outageMargin is what a request may take beyond one store timeout plus one handler run while Redis is
// down or stalled: a real HTTP round trip on a loaded 2-core machine, goroutine scheduling behind the
// load, and under -race the detector's slowdown of go-redis and net/http.
func outageMargin() time.Duration {
	if raceEnabled {
		return 250 * time.Millisecond
	}
	return 100 * time.Millisecond
}

// sample is one request of a load run.
type sample struct {
	start   time.Duration // since the load began
	latency time.Duration
	xcache  string
	err     error
}

// TestRedisOutageUnderLoad: clients keep requesting (hot keys, expiring keys, one-off keys) while Redis
// is killed, restarted, and later stalled (CLIENT PAUSE). No client request fails, every body is the
// right one, the p99 latency of the requests that started during a fault stays within the store timeout
// plus the handler time (plus outageMargin), and caching resumes by itself after each fault (SPEC §7.1).
// Not parallel: the latency bound is about this middleware, not about the other tests' load.
func TestRedisOutageUnderLoad(t *testing.T) {
	const (
		storeTimeout = 100 * time.Millisecond
		handlerTime  = 10 * time.Millisecond
	)
	// The timeline, from the start of the load: Redis is killed at killAt and restarted at restartAt;
	// it is paused at pauseAt for pauseFor; the load stops at end. The gaps leave room for the breaker:
	// its back-off doubles from 100 ms with each failed probe, so after a 2.5 s outage its next probe may
	// come up to 3.2 s later, still before the pause; likewise after the pause, before the end.
	const (
		killAt    = 2 * time.Second
		restartAt = 4500 * time.Millisecond
		pauseAt   = 9 * time.Second
		pauseFor  = 1500 * time.Millisecond
		end       = 14 * time.Second
	)
	workers := 32
	if raceEnabled {
		workers = 16
	}
	srv := redistest.Start(t)
	var logs logBuffer
	store := redisstore.New(redisClient(t, srv.Addr(), 64), redisstore.WithTimeout(storeTimeout))
	c := stampede.New(newLogger(&logs), store, 2*time.Second, stampede.WithStoreTimeout(storeTimeout),
		stampede.WithCircuitBreaker(5, 100*time.Millisecond))
	var runs atomic.Int64
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		time.Sleep(handlerTime) // the origin's work
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "body of %s", r.URL.RequestURI())
	})
	hs, client := newServer(t, c.Handler(origin), workers)

	var (
		mu      sync.Mutex
		samples []sample
		wrong   []string
		begin   = time.Now()
		stop    = make(chan struct{})
		wg      sync.WaitGroup
		unique  atomic.Int64
		outages [][2]time.Duration // [from, to) windows during which Redis was down or stalled
	)
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewSource(int64(w)))
			for {
				select {
				case <-stop:
					return
				default:
				}
				var path string
				switch p := rng.Intn(100); {
				case p < 70:
					path = fmt.Sprintf("/hot/%d", rng.Intn(50)) // mostly hits
				case p < 95:
					path = fmt.Sprintf("/warm/%d", rng.Intn(2000)) // expire after 2 s: misses all along
				default:
					path = fmt.Sprintf("/once/%d", unique.Add(1)) // never seen before
				}
				start := time.Now()
				r := get(t.Context(), client, hs.URL+path, nil)
				s := sample{start: start.Sub(begin), latency: time.Since(start), xcache: r.header.Get("X-Cache"), err: r.err}
				if r.err == nil && (r.status != http.StatusOK || r.body != "body of "+path) {
					s.err = fmt.Errorf("%s: status %d body %q", path, r.status, r.body)
				}
				mu.Lock()
				samples = append(samples, s)
				if s.err != nil {
					wrong = append(wrong, s.err.Error())
				}
				mu.Unlock()
			}
		})
	}

	at := func(d time.Duration) { time.Sleep(time.Until(begin.Add(d))) } // the fault schedule
	at(killAt)
	from := time.Since(begin)
	srv.Stop()
	at(restartAt)
	srv.Restart()
	outages = append(outages, [2]time.Duration{from, time.Since(begin)})
	at(pauseAt)
	from = time.Since(begin)
	srv.Pause(pauseFor)
	outages = append(outages, [2]time.Duration{from, from + pauseFor})
	at(end)
	close(stop)
	wg.Wait()
	c.Wait()

	require.Empty(t, wrong, "failed or wrong client requests")
	inOutage := func(s sample) int {
		for i, o := range outages {
			if s.start >= o[0] && s.start < o[1] {
				return i
			}
		}
		return -1
	}
	var during [2][]time.Duration
	var hitsAfter [2]int
	for _, s := range samples {
		if i := inOutage(s); i >= 0 {
			during[i] = append(during[i], s.latency)
		}
		if s.xcache == "HIT" {
			switch {
			case s.start > outages[0][1]+time.Second && s.start < outages[1][0]:
				hitsAfter[0]++ // served from Redis again after the restart
			case s.start > outages[1][1]+time.Second:
				hitsAfter[1]++ // and after the pause
			}
		}
	}
	bound := storeTimeout + handlerTime + outageMargin()
	for i, name := range []string{"killed", "paused"} {
		require.NotEmpty(t, during[i], "no request started while Redis was %s", name)
		slices.Sort(during[i])
		p99 := during[i][len(during[i])*99/100]
		t.Logf("Redis %s for %v: %d requests served, p50 %v, p99 %v, max %v (bound %v)", name,
			(outages[i][1] - outages[i][0]).Round(time.Millisecond), len(during[i]),
			during[i][len(during[i])/2], p99, during[i][len(during[i])-1], bound)
		assert.LessOrEqual(t, p99, bound, "p99 latency while Redis was %s", name)
		assert.Positive(t, hitsAfter[i], "caching did not resume after Redis was %s", name)
	}
	t.Logf("%d requests in %v with %d workers, 0 failed; handler runs %d; faults: kill+restart, pause",
		len(samples), end, workers, runs.Load())
	out := logs.String()
	assert.Contains(t, out, "circuit breaker open", "the breaker opened during the outage")
	assert.Contains(t, out, "circuit breaker closed", "and closed after it")
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
// handler run ends, and no goroutine is left behind (SPEC §5.3, §5.4, §5.8).
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
			case <-time.After(10 * time.Second):
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
	case <-time.After(2 * time.Minute):
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
	require.Eventually(t, func() bool { return started.Load() == finished.Load() }, 10*time.Second, 5*time.Millisecond,
		"handler runs started %d, finished %d", started.Load(), finished.Load())
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
