package prometheus_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
	stampedeprom "github.com/seed-a1426414/stampede/metrics/prometheus"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// traffic builds two caches, one on the memory store and one coalescing only, and sends each a known mix
// of requests: hits, misses, passes, a failure, an unshareable response.
func traffic(t *testing.T) (products, users *stampede.Cache, store *memstore.Store) {
	t.Helper()
	store, err := memstore.New(1 << 20)
	require.NoError(t, err)
	t.Cleanup(store.Close)
	products = stampede.New(nil, store, time.Minute, stampede.WithName("products"))
	users = stampede.New(nil, nil, 0, stampede.WithName("users"))
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/fail":
			w.WriteHeader(http.StatusInternalServerError)
		case "/private":
			w.Header().Set("Cache-Control", "private")
		}
		_, _ = io.WriteString(w, "body")
	})
	for _, c := range []*stampede.Cache{products, users} {
		h := c.Handler(origin)
		for _, target := range []string{"/a", "/a", "/a", "/fail", "/private", "/private"} {
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, target, nil))
			c.Wait()
		}
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/a", strings.NewReader("")))
	}
	store.CleanUp() // settle the byte count, so the snapshot and the scrape agree
	return products, users, store
}

// TestCollectorLint: the metrics follow Prometheus' naming and typing conventions.
func TestCollectorLint(t *testing.T) {
	products, users, _ := traffic(t)
	problems, err := testutil.CollectAndLint(stampedeprom.NewCollector(products, users))
	require.NoError(t, err)
	assert.Empty(t, problems)
}

// TestCollectorExact: the exact exposition for the known traffic.
func TestCollectorExact(t *testing.T) {
	products, users, _ := traffic(t)
	want := `
# HELP stampede_requests_total Requests that reached the middleware.
# TYPE stampede_requests_total counter
stampede_requests_total{cache="products"} 7
stampede_requests_total{cache="users"} 7
# HELP stampede_hits_total Requests served a fresh response from the store (X-Cache: HIT).
# TYPE stampede_hits_total counter
stampede_hits_total{cache="products"} 2
stampede_hits_total{cache="users"} 0
# HELP stampede_misses_total Requests that ran the handler for the others (X-Cache: MISS).
# TYPE stampede_misses_total counter
stampede_misses_total{cache="products"} 3
stampede_misses_total{cache="users"} 5
# HELP stampede_handler_failures_total Handler runs that answered 5xx, panicked or called runtime.Goexit.
# TYPE stampede_handler_failures_total counter
stampede_handler_failures_total{cache="products"} 1
stampede_handler_failures_total{cache="users"} 1
# HELP stampede_unshareable_total Handler runs whose response could not be shared, by reason.
# TYPE stampede_unshareable_total counter
stampede_unshareable_total{cache="products",reason="authorization"} 0
stampede_unshareable_total{cache="products",reason="event-stream"} 0
stampede_unshareable_total{cache="products",reason="hijacked"} 0
stampede_unshareable_total{cache="products",reason="incomplete"} 0
stampede_unshareable_total{cache="products",reason="no-store"} 0
stampede_unshareable_total{cache="products",reason="partial"} 0
stampede_unshareable_total{cache="products",reason="private"} 1
stampede_unshareable_total{cache="products",reason="set-cookie"} 0
stampede_unshareable_total{cache="products",reason="status"} 0
stampede_unshareable_total{cache="products",reason="too-large"} 0
stampede_unshareable_total{cache="products",reason="vary-star"} 0
stampede_unshareable_total{cache="users",reason="authorization"} 0
stampede_unshareable_total{cache="users",reason="event-stream"} 0
stampede_unshareable_total{cache="users",reason="hijacked"} 0
stampede_unshareable_total{cache="users",reason="incomplete"} 0
stampede_unshareable_total{cache="users",reason="no-store"} 0
stampede_unshareable_total{cache="users",reason="partial"} 0
stampede_unshareable_total{cache="users",reason="private"} 1
stampede_unshareable_total{cache="users",reason="set-cookie"} 0
stampede_unshareable_total{cache="users",reason="status"} 0
stampede_unshareable_total{cache="users",reason="too-large"} 0
stampede_unshareable_total{cache="users",reason="vary-star"} 0
# HELP stampede_store_errors_total Store calls that failed or timed out, by operation.
# TYPE stampede_store_errors_total counter
stampede_store_errors_total{cache="products",op="get"} 0
stampede_store_errors_total{cache="products",op="set"} 0
stampede_store_errors_total{cache="users",op="get"} 0
stampede_store_errors_total{cache="users",op="set"} 0
# HELP stampede_memory_entries Entries held by the in-process store.
# TYPE stampede_memory_entries gauge
stampede_memory_entries{cache="products"} 0
`
	c := stampedeprom.NewCollector(products, users)
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(want),
		"stampede_requests_total", "stampede_hits_total", "stampede_misses_total", "stampede_handler_failures_total",
		"stampede_unshareable_total", "stampede_store_errors_total", "stampede_memory_entries"))
	// /a missed once then hit twice, /fail and /private missed, /private then passed (hit-for-pass), POST
	// passed and invalidated /a (docs/behaviour.md §6.5), so the store holds nothing.
	assert.Equal(t, 1.0, passes(t, c, "products", "hit-for-pass"))
	assert.Equal(t, 1.0, passes(t, c, "products", "method"))
	assert.Equal(t, 1.0, passes(t, c, "users", "hit-for-pass"))
}

func passes(t *testing.T, c prometheus.Collector, cache, reason string) float64 {
	t.Helper()
	for _, m := range collect(t, c)["stampede_passes_total"] {
		if label(m, "cache") == cache && label(m, "reason") == reason {
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no stampede_passes_total{cache=%q,reason=%q}", cache, reason)
	return 0
}

// collect gathers c through a pedantic registry, which also checks Collect against Describe.
func collect(t *testing.T, c prometheus.Collector) map[string][]*dto.Metric {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c))
	families, err := reg.Gather()
	require.NoError(t, err)
	out := map[string][]*dto.Metric{}
	for _, f := range families {
		out[f.GetName()] = f.GetMetric()
	}
	return out
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// TestCollectorEqualsSnapshot: every figure of every cache's Snapshot is scraped with the same value.
func TestCollectorEqualsSnapshot(t *testing.T) {
	products, users, _ := traffic(t)
	got := collect(t, stampedeprom.NewCollector(products, users))
	for _, cache := range []*stampede.Cache{products, users} {
		s := cache.Snapshot()
		value := func(name string, labels ...string) float64 {
			t.Helper()
		next:
			for _, m := range got[name] {
				if label(m, "cache") != s.Name {
					continue
				}
				for i := 0; i+1 < len(labels); i += 2 {
					if label(m, labels[i]) != labels[i+1] {
						continue next
					}
				}
				switch {
				case m.Counter != nil:
					return m.GetCounter().GetValue()
				case m.Gauge != nil:
					return m.GetGauge().GetValue()
				}
			}
			t.Fatalf("%s{cache=%q,%v} not collected", name, s.Name, labels)
			return 0
		}
		for name, want := range map[string]uint64{
			"stampede_requests_total": s.Requests, "stampede_hits_total": s.Hits,
			"stampede_stale_hits_total": s.StaleHits, "stampede_misses_total": s.Misses,
			"stampede_coalesced_total": s.Coalesced, "stampede_abandoned_total": s.Abandoned,
			"stampede_handler_failures_total": s.Failures, "stampede_handler_panics_total": s.Panics,
			"stampede_breaker_trips_total": s.BreakerTrips,
		} {
			assert.Equal(t, float64(want), value(name), "%s %s", s.Name, name)
		}
		assert.Equal(t, float64(s.StoreGetErrors), value("stampede_store_errors_total", "op", "get"))
		assert.Equal(t, float64(s.StoreSetErrors), value("stampede_store_errors_total", "op", "set"))
		assert.Equal(t, 0.0, value("stampede_breaker_open"))
		for reason, n := range s.PassReasons {
			assert.Equal(t, float64(n), value("stampede_passes_total", "reason", reason), reason)
		}
		assert.Len(t, filter(got["stampede_passes_total"], s.Name), len(s.PassReasons))
		for reason, n := range s.Unshareable {
			assert.Equal(t, float64(n), value("stampede_unshareable_total", "reason", reason), reason)
		}
		assert.Len(t, filter(got["stampede_unshareable_total"], s.Name), len(s.Unshareable))

		hists := filter(got["stampede_handler_duration_seconds"], s.Name)
		require.Len(t, hists, 1)
		h := hists[0].GetHistogram()
		assert.Equal(t, s.Runs, h.GetSampleCount())
		assert.Equal(t, s.HandlerTimes.Sum, h.GetSampleSum())
		require.Len(t, h.GetBucket(), len(s.HandlerTimes.Bounds))
		var cumulative uint64
		for i, b := range h.GetBucket() {
			cumulative += s.HandlerTimes.Counts[i]
			assert.Equal(t, s.HandlerTimes.Bounds[i], b.GetUpperBound())
			assert.Equal(t, cumulative, b.GetCumulativeCount())
		}

		if s.Memory == nil {
			assert.Empty(t, filter(got["stampede_memory_entries"], s.Name), "no memory figures without a memory store")
			continue
		}
		assert.Equal(t, float64(s.Memory.Entries), value("stampede_memory_entries"))
		assert.Equal(t, float64(s.Memory.Bytes), value("stampede_memory_bytes"))
		assert.Equal(t, float64(s.Memory.Evictions), value("stampede_memory_evictions_total"))
	}
}

func filter(ms []*dto.Metric, cache string) []*dto.Metric {
	var out []*dto.Metric
	for _, m := range ms {
		if label(m, "cache") == cache {
			out = append(out, m)
		}
	}
	return out
}

// TestCollectorDuplicateNames: two caches with one name would collide on the cache label.
func TestCollectorDuplicateNames(t *testing.T) {
	a := stampede.New(nil, nil, 0)
	b := stampede.New(nil, nil, 0)
	assert.PanicsWithValue(t,
		`stampede/prometheus: two caches are named "stampede"; name them apart with stampede.WithName`,
		func() { stampedeprom.NewCollector(a, b) })
	assert.PanicsWithValue(t, "stampede/prometheus: NewCollector expects non-nil caches",
		func() { stampedeprom.NewCollector(nil) })
	assert.NotPanics(t, func() { stampedeprom.NewCollector(a, stampede.New(nil, nil, 0, stampede.WithName("b"))) })
}

// Register a collector for two named caches; serve the registry with promhttp.HandlerFor at /metrics.
func ExampleNewCollector() {
	products := stampede.New(nil, nil, 0, stampede.WithName("products"))
	users := stampede.New(nil, nil, 0, stampede.WithName("users"))
	reg := prometheus.NewRegistry()
	reg.MustRegister(stampedeprom.NewCollector(products, users))

	products.Handler(http.NotFoundHandler()).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	families, _ := reg.Gather()
	for _, f := range families {
		if f.GetName() == "stampede_requests_total" {
			for _, m := range f.GetMetric() {
				fmt.Println(m.GetLabel()[0].GetValue(), m.GetCounter().GetValue())
			}
		}
	}
	// Output:
	// products 1
	// users 0
}

// TestRootHasNoPrometheus: importing stampede alone does not bring in Prometheus.
func TestRootHasNoPrometheus(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list dependencies with")
	}
	out, err := exec.Command(goTool, "list", "-deps", "github.com/seed-a1426414/stampede").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "github.com/seed-a1426414/stampede\n")
	assert.NotContains(t, string(out), "prometheus")
}
