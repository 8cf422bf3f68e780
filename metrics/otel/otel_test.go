package otel_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
	stampedeotel "github.com/seed-a1426414/stampede/metrics/otel"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// rig is a cache observed by an Observer, behind a handler that starts a span per request as HTTP
// instrumentation does, served by a real server through net/http's ServeMux.
type rig struct {
	spans  *tracetest.SpanRecorder
	ended  chan sdktrace.ReadOnlySpan // each span as it ends
	reader *sdkmetric.ManualReader
	cache  *stampede.Cache
	url    string
	client *http.Client
}

func newRig(t *testing.T, store stampede.Store) *rig {
	t.Helper()
	r := &rig{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader(), ended: make(chan sdktrace.ReadOnlySpan, 16)}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(r.spans), sdktrace.WithSpanProcessor(endSignal{r.ended}))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r.reader))
	t.Cleanup(func() {
		require.NoError(t, tp.Shutdown(context.Background()))
		require.NoError(t, mp.Shutdown(context.Background()))
	})
	obs, err := stampedeotel.NewObserver(mp)
	require.NoError(t, err)
	r.cache = stampede.New(nil, store, time.Minute, stampede.WithName("items"), stampede.WithObserver(obs))
	t.Cleanup(r.cache.Close)
	reg, err := stampedeotel.RegisterSnapshots(mp, r.cache)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, reg.Unregister()) })

	mux := http.NewServeMux()
	mux.Handle("GET /items/{id}", r.cache.Handler(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.WriteString(w, req.PathValue("id"))
	})))
	tracer := tp.Tracer("test")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		ctx, span := tracer.Start(req.Context(), req.Method+" "+req.URL.Path)
		defer span.End()
		mux.ServeHTTP(w, req.WithContext(ctx))
	}))
	t.Cleanup(srv.Close)
	r.url, r.client = srv.URL, srv.Client()
	t.Cleanup(r.client.CloseIdleConnections)
	return r
}

// endSignal is a span processor that sends each span as it ends.
type endSignal struct{ ended chan<- sdktrace.ReadOnlySpan }

func (e endSignal) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (e endSignal) OnEnd(s sdktrace.ReadOnlySpan)                   { e.ended <- s }
func (e endSignal) Shutdown(context.Context) error                  { return nil }
func (e endSignal) ForceFlush(context.Context) error                { return nil }

// get sends a GET and returns the span the server ended for it: it ends once the handler returned,
// which may be after the client has read the response.
func (r *rig) get(t *testing.T, path string) sdktrace.ReadOnlySpan {
	t.Helper()
	resp, err := r.client.Get(r.url + path)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	require.NoError(t, resp.Body.Close())
	span := <-r.ended
	r.cache.Wait()
	return span
}

func attrs(span sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range span.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

// TestSpanAttributes: a miss, then a hit, each set its outcome, key digest, route and durations on the
// request's span.
func TestSpanAttributes(t *testing.T) {
	store, err := memstore.New(1 << 20)
	require.NoError(t, err)
	t.Cleanup(store.Close)
	r := newRig(t, store)

	miss := attrs(r.get(t, "/items/1"))
	assert.Equal(t, "items", miss["stampede.cache"].AsString())
	assert.Equal(t, "MISS", miss["stampede.outcome"].AsString())
	assert.Len(t, miss["stampede.key"].AsString(), 32)
	assert.Equal(t, "GET /items/{id}", miss["http.route"].AsString())
	assert.Positive(t, miss["stampede.run.duration"].AsFloat64())
	assert.Positive(t, miss["stampede.duration"].AsFloat64())
	assert.Equal(t, int64(1), miss["stampede.store.calls"].AsInt64())
	assert.Equal(t, int64(0), miss["stampede.store.errors"].AsInt64())

	hit := attrs(r.get(t, "/items/1"))
	assert.Equal(t, "HIT", hit["stampede.outcome"].AsString())
	assert.Equal(t, miss["stampede.key"], hit["stampede.key"])
	_, ran := hit["stampede.run.duration"]
	assert.False(t, ran, "a hit led no run")
	assert.Len(t, r.spans.Ended(), 2, "one span per request, and no other")
}

// failingStore fails every call.
type failingStore struct{}

var errDown = errors.New("store down")

func (failingStore) Get(context.Context, string) ([]byte, bool, error)          { return nil, false, errDown }
func (failingStore) SetEx(context.Context, string, []byte, time.Duration) error { return errDown }
func (failingStore) Delete(context.Context, string) error                       { return errDown }

// TestSpanStoreErrors: a failed store read is counted on the span, as an event, and in the metrics.
func TestSpanStoreErrors(t *testing.T) {
	r := newRig(t, failingStore{})
	span := r.get(t, "/items/1")
	a := attrs(span)
	assert.Equal(t, "MISS", a["stampede.outcome"].AsString())
	assert.Equal(t, int64(1), a["stampede.store.errors"].AsInt64())
	require.Len(t, span.Events(), 1)
	assert.Equal(t, "stampede.store.error", span.Events()[0].Name)

	rm := r.collect(t)
	errs := sums(t, rm, "stampede.store.errors", "stampede.store.op")
	assert.Equal(t, int64(1), errs["get"])
	assert.Equal(t, int64(1), errs["set"], "the run's write failed too")
	assert.Equal(t, int64(1), sums(t, rm, "stampede.store.get_errors", "")[""])
}

func (r *rig) collect(t *testing.T) metricdata.ResourceMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.reader.Collect(context.Background(), &rm))
	return rm
}

// find returns the metric named name.
func find(t *testing.T, rm metricdata.ResourceMetrics, name string) metricdata.Metrics {
	t.Helper()
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				return m
			}
		}
	}
	t.Fatalf("no metric %s", name)
	return metricdata.Metrics{}
}

// sums returns the values of an int64 sum or gauge by the value of the attribute by ("" for all).
func sums(t *testing.T, rm metricdata.ResourceMetrics, name string, by attribute.Key) map[string]int64 {
	t.Helper()
	var points []metricdata.DataPoint[int64]
	switch d := find(t, rm, name).Data.(type) {
	case metricdata.Sum[int64]:
		points = d.DataPoints
	case metricdata.Gauge[int64]:
		points = d.DataPoints
	default:
		t.Fatalf("%s is a %T", name, d)
	}
	out := map[string]int64{}
	for _, p := range points {
		key := ""
		if by != "" {
			v, _ := p.Attributes.Value(by)
			key = v.AsString()
		}
		out[key] += p.Value
	}
	return out
}

// histogramCounts returns the counts of a float64 histogram by the value of the attribute by.
func histogramCounts(t *testing.T, rm metricdata.ResourceMetrics, name string, by attribute.Key) map[string]uint64 {
	t.Helper()
	h, ok := find(t, rm, name).Data.(metricdata.Histogram[float64])
	require.True(t, ok, name)
	out := map[string]uint64{}
	for _, p := range h.DataPoints {
		v, _ := p.Attributes.Value(by)
		out[v.AsString()] += p.Count
	}
	return out
}

// TestMetricsEqualSnapshot: the snapshot instruments carry the Snapshot's figures, and the observer's
// histograms count each request, run and store call.
func TestMetricsEqualSnapshot(t *testing.T) {
	store, err := memstore.New(1 << 20)
	require.NoError(t, err)
	t.Cleanup(store.Close)
	r := newRig(t, store)
	for _, path := range []string{"/items/1", "/items/1", "/items/2", "/items/1"} {
		r.get(t, path)
	}
	store.CleanUp()
	s := r.cache.Snapshot()
	rm := r.collect(t)
	for name, want := range map[string]uint64{
		"stampede.requests": s.Requests, "stampede.hits": s.Hits, "stampede.misses": s.Misses, "stampede.runs": s.Runs,
	} {
		assert.Equal(t, map[string]int64{"items": int64(want)}, sums(t, rm, name, "stampede.cache"), name)
	}
	assert.Equal(t, map[string]int64{"items": 4}, sums(t, rm, "stampede.requests", "stampede.cache"))
	assert.Equal(t, map[string]int64{"items": 0}, sums(t, rm, "stampede.in_flight", "stampede.cache"))
	assert.Equal(t, map[string]int64{"items": int64(store.Len())}, sums(t, rm, "stampede.memory.entries", "stampede.store"))
	assert.Equal(t, map[string]int64{"items": store.Bytes()}, sums(t, rm, "stampede.memory.bytes", "stampede.store"))
	assert.Equal(t, map[string]uint64{"HIT": 2, "MISS": 2}, histogramCounts(t, rm, "stampede.request.duration", "stampede.outcome"))
	assert.Equal(t, map[string]uint64{"items": 2}, histogramCounts(t, rm, "stampede.run.duration", "stampede.cache"))
	assert.Equal(t, map[string]uint64{"get": 4, "set": 2}, histogramCounts(t, rm, "stampede.store.duration", "stampede.store.op"))
}

// TestSharedStoreOnce: sources sharing one store report its memory once; an entry-bounded values store
// reports its bound, not a byte count.
func TestSharedStoreOnce(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { require.NoError(t, mp.Shutdown(context.Background())) })
	store, err := memstore.New(1 << 20)
	require.NoError(t, err)
	t.Cleanup(store.Close)
	values, err := memstore.NewValues[any](50)
	require.NoError(t, err)
	t.Cleanup(values.Close)
	var sources []stampede.StatsSource
	for i := range 3 {
		c := stampede.New(nil, store, time.Minute, stampede.WithName(fmt.Sprint("c", i)))
		c.Handler(http.NotFoundHandler()).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, fmt.Sprint("/", i), nil))
		c.Wait()
		sources = append(sources, c)
	}
	users := stampede.NewLoader("users", func(_ context.Context, id int) (int, error) { return id, nil }, stampede.WithValues(values))
	t.Cleanup(users.Close)
	_, err = users.Get(context.Background(), 1)
	require.NoError(t, err)
	users.Wait()
	sources = append(sources, users)
	store.CleanUp()
	reg, err := stampedeotel.RegisterSnapshots(mp, sources...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, reg.Unregister()) })

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	assert.Equal(t, map[string]int64{"c0": 3, "users": 1}, sums(t, rm, "stampede.memory.entries", "stampede.store"))
	assert.Equal(t, map[string]int64{"c0": store.Bytes()}, sums(t, rm, "stampede.memory.bytes", "stampede.store"))
	assert.Equal(t, map[string]int64{"users": 50}, sums(t, rm, "stampede.memory.max_entries", "stampede.store"))

	_, err = stampedeotel.RegisterSnapshots(mp, sources[0], sources[0])
	assert.ErrorContains(t, err, `two sources are named "c0"`)
}
