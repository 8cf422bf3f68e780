// Package otel reports stampede caches to OpenTelemetry: what each request did on the active span,
// and metrics equivalent to the Prometheus collector's (metrics/prometheus).
//
// Two parts, used together or apart:
//
//   - [Observer] is a [stampede.Observer] (give it to [stampede.WithObserver]): at the end of each request
//     (or load) it sets the outcome, key digest, run duration and store errors on the span in the
//     request's context (the one your HTTP instrumentation, otelhttp say, started), and records the
//     request, run and store-call durations in histograms.
//
//   - [RegisterSnapshots] registers asynchronous instruments that read each source's [stampede.Snapshot]
//     when the meter collects: the counters and gauges of the Prometheus collector.
//
//     obs, err := stampedeotel.NewObserver(otel.GetMeterProvider())
//     products := stampede.New(logger, store, time.Minute, stampede.WithName("products"), stampede.WithObserver(obs))
//     reg, err := stampedeotel.RegisterSnapshots(otel.GetMeterProvider(), products)
//
// # Span attributes
//
// Set on the span of the request's context when it is recording: stampede.cache, stampede.outcome
// (X-Cache: HIT, MISS, COALESCED, BYPASS; LOAD for a load), stampede.reason (when there is one),
// stampede.key (the key's hex digest, never the key material), stampede.duration (seconds, the request's
// time in the cache), stampede.run.duration (seconds, when the request led a run), stampede.store.calls,
// stampede.store.errors and stampede.store.duration (seconds); http.route when the route is known. A
// store call that fails adds the event stampede.store.error (stampede.store.op, exception.message).
//
// # Metrics
//
// From the Observer (each with the stampede.cache attribute): stampede.request.duration (histogram, s,
// by stampede.outcome), stampede.run.duration (histogram, s: the handler runs and loads led),
// stampede.store.duration (histogram, s, by stampede.store.op), stampede.store.errors (counter, by
// stampede.store.op). From RegisterSnapshots, one series per source (stampede.cache) unless said:
// stampede.requests, stampede.hits, stampede.stale_hits, stampede.misses, stampede.refreshes,
// stampede.coalesced, stampede.abandoned, stampede.failed, stampede.passes (by stampede.reason),
// stampede.unshareable (by stampede.reason), stampede.runs, stampede.handler.failures,
// stampede.handler.panics, stampede.store.get_errors, stampede.store.set_errors,
// stampede.breaker.trips, stampede.fleet.served, stampede.fleet.fenced, stampede.batch_loads,
// stampede.cached_errors, stampede.decode_errors (counters); stampede.breaker.open and
// stampede.in_flight (gauges); and, once per store however many sources share it (by stampede.store,
// the name of the first source using it), stampede.memory.entries, stampede.memory.bytes (a store
// bounded by bytes), stampede.memory.max_entries (a store bounded by entries) and
// stampede.memory.evictions.
//
// The root stampede package does not depend on OpenTelemetry; only programs that import this package do.
package otel

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/seed-a1426414/stampede"
)

// scope is the instrumentation scope of the meters.
const scope = "github.com/seed-a1426414/stampede/metrics/otel"

// Attribute keys.
const (
	keyCache   = attribute.Key("stampede.cache")
	keyOutcome = attribute.Key("stampede.outcome")
	keyReason  = attribute.Key("stampede.reason")
	keyKey     = attribute.Key("stampede.key")
	keyOp      = attribute.Key("stampede.store.op")
	keyStore   = attribute.Key("stampede.store")
)

// Observer is a [stampede.Observer] that reports to OpenTelemetry; build it with [NewObserver]. It is
// safe for concurrent use, and one Observer may serve many caches and loaders.
type Observer struct {
	requestDuration, runDuration, storeDuration metric.Float64Histogram
	storeErrors                                 metric.Int64Counter
}

// NewObserver returns an Observer whose instruments come from mp (otel.GetMeterProvider() for the
// global one). It fails only when an instrument cannot be created.
func NewObserver(mp metric.MeterProvider) (*Observer, error) {
	m := mp.Meter(scope)
	var o Observer
	var err, e error
	o.requestDuration, e = m.Float64Histogram("stampede.request.duration", metric.WithUnit("s"),
		metric.WithDescription("Time of the requests (or loads) in the cache, from arrival to the end of the response."))
	err = join(err, e)
	o.runDuration, e = m.Float64Histogram("stampede.run.duration", metric.WithUnit("s"),
		metric.WithDescription("Time of the handler runs (or loads) the cache led."))
	err = join(err, e)
	o.storeDuration, e = m.Float64Histogram("stampede.store.duration", metric.WithUnit("s"),
		metric.WithDescription("Time of the store calls that reached the store, by operation."))
	err = join(err, e)
	o.storeErrors, e = m.Int64Counter("stampede.store.errors", metric.WithUnit("{call}"),
		metric.WithDescription("Store calls that failed or timed out, by operation."))
	err = join(err, e)
	if err != nil {
		return nil, fmt.Errorf("stampede/otel: %w", err)
	}
	return &o, nil
}

func join(err, e error) error {
	if err != nil {
		return err
	}
	return e
}

// ObserveRequest implements [stampede.Observer]: it records ev on the active span of ctx and in the
// duration histograms.
func (o *Observer) ObserveRequest(ctx context.Context, ev stampede.RequestEvent) {
	cache := keyCache.String(ev.Cache)
	o.requestDuration.Record(ctx, ev.Duration.Seconds(), metric.WithAttributes(cache, keyOutcome.String(ev.Outcome)))
	if ev.Run > 0 {
		o.runDuration.Record(ctx, ev.Run.Seconds(), metric.WithAttributes(cache))
	}
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	attrs := make([]attribute.KeyValue, 0, 10)
	attrs = append(attrs, cache, keyOutcome.String(ev.Outcome),
		attribute.Float64("stampede.duration", ev.Duration.Seconds()))
	if ev.Reason != "" {
		attrs = append(attrs, keyReason.String(ev.Reason))
	}
	if ev.Key != "" {
		attrs = append(attrs, keyKey.String(ev.Key))
	}
	if ev.Run > 0 {
		attrs = append(attrs, attribute.Float64("stampede.run.duration", ev.Run.Seconds()))
	}
	if ev.StoreCalls > 0 {
		attrs = append(attrs, attribute.Int("stampede.store.calls", ev.StoreCalls),
			attribute.Int("stampede.store.errors", ev.StoreErrors),
			attribute.Float64("stampede.store.duration", ev.StoreTime.Seconds()))
	}
	if ev.Route != "" {
		attrs = append(attrs, attribute.String("http.route", ev.Route))
	}
	span.SetAttributes(attrs...)
	if ev.Err != nil {
		span.RecordError(ev.Err)
	}
}

// ObserveStore implements [stampede.Observer]: it records the call's time, counts it when it failed,
// and adds a failure as an event to the active span of ctx.
func (o *Observer) ObserveStore(ctx context.Context, call stampede.StoreCall) {
	attrs := metric.WithAttributes(keyCache.String(call.Cache), keyOp.String(call.Op))
	o.storeDuration.Record(ctx, call.Duration.Seconds(), attrs)
	if call.Err == nil {
		return
	}
	o.storeErrors.Add(ctx, 1, attrs)
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.AddEvent("stampede.store.error", trace.WithAttributes(keyOp.String(call.Op),
			attribute.String("exception.message", call.Err.Error())))
	}
}

var _ stampede.Observer = (*Observer)(nil)

// counterField is a Snapshot counter exported as an OpenTelemetry counter.
type counterField struct {
	name, unit, desc string
	get              func(*stampede.Snapshot) uint64
}

var counterFields = []counterField{
	{"stampede.requests", "{request}", "Requests that reached the cache.", func(s *stampede.Snapshot) uint64 { return s.Requests }},
	{"stampede.hits", "{request}", "Requests served a fresh response from the store.", func(s *stampede.Snapshot) uint64 { return s.Hits }},
	{"stampede.stale_hits", "{request}", "Requests served an expired response from the store.", func(s *stampede.Snapshot) uint64 { return s.StaleHits }},
	{"stampede.misses", "{request}", "Requests that ran the handler for the others.", func(s *stampede.Snapshot) uint64 { return s.Misses }},
	{"stampede.refreshes", "{run}", "Background runs that refreshed an entry nobody waited on.", func(s *stampede.Snapshot) uint64 { return s.Refreshes }},
	{"stampede.coalesced", "{request}", "Requests served the response of another request's run.", func(s *stampede.Snapshot) uint64 { return s.Coalesced }},
	{"stampede.abandoned", "{request}", "Waiting requests whose client left before the run answered.", func(s *stampede.Snapshot) uint64 { return s.Abandoned }},
	{"stampede.failed", "{request}", "Waiting requests that got no whole response from the run they waited on.", func(s *stampede.Snapshot) uint64 { return s.Failed }},
	{"stampede.runs", "{run}", "Finished handler runs (or loads) the cache led.", func(s *stampede.Snapshot) uint64 { return s.Runs }},
	{"stampede.handler.failures", "{run}", "Runs that answered 5xx, panicked or called runtime.Goexit.", func(s *stampede.Snapshot) uint64 { return s.Failures }},
	{"stampede.handler.panics", "{run}", "Runs that panicked or called runtime.Goexit.", func(s *stampede.Snapshot) uint64 { return s.Panics }},
	{"stampede.store.get_errors", "{call}", "Store reads that failed or timed out.", func(s *stampede.Snapshot) uint64 { return s.StoreGetErrors }},
	{"stampede.store.set_errors", "{call}", "Store writes that failed or timed out.", func(s *stampede.Snapshot) uint64 { return s.StoreSetErrors }},
	{"stampede.breaker.trips", "{trip}", "Times the circuit breaker opened.", func(s *stampede.Snapshot) uint64 { return s.BreakerTrips }},
	{"stampede.fleet.served", "{request}", "Leaders that replayed another replica's stored response.", func(s *stampede.Snapshot) uint64 { return s.FleetServed }},
	{"stampede.fleet.fenced", "{write}", "Responses not stored because their fleet lease had expired.", func(s *stampede.Snapshot) uint64 { return s.FleetFenced }},
	{"stampede.batch_loads", "{call}", "Calls of a loader's batch load function.", func(s *stampede.Snapshot) uint64 { return s.BatchLoads }},
	{"stampede.cached_errors", "{request}", "Hits on a kept load failure.", func(s *stampede.Snapshot) uint64 { return s.CachedErrors }},
	{"stampede.decode_errors", "{value}", "Stored values that did not decode.", func(s *stampede.Snapshot) uint64 { return s.DecodeErrors }},
}

// RegisterSnapshots registers, on a meter of mp, instruments that read the Snapshot of each source
// whenever the meter collects: the counters and gauges listed in the package doc. Unregister the
// returned registration to stop. Every source must have a name of its own (see [stampede.WithName]);
// RegisterSnapshots fails on a nil source or a name given twice.
func RegisterSnapshots(mp metric.MeterProvider, sources ...stampede.StatsSource) (metric.Registration, error) {
	seen := map[string]bool{}
	for _, s := range sources {
		if isNil(s) {
			return nil, fmt.Errorf("stampede/otel: RegisterSnapshots expects non-nil sources")
		}
		name := s.Snapshot().Name
		if seen[name] {
			return nil, fmt.Errorf("stampede/otel: two sources are named %q; name them apart with stampede.WithName", name)
		}
		seen[name] = true
	}
	sources = append([]stampede.StatsSource(nil), sources...)
	m := mp.Meter(scope)
	var err, e error
	counters := make([]metric.Int64ObservableCounter, len(counterFields))
	instruments := make([]metric.Observable, 0, len(counterFields)+8)
	for i, f := range counterFields {
		counters[i], e = m.Int64ObservableCounter(f.name, metric.WithUnit(f.unit), metric.WithDescription(f.desc))
		err = join(err, e)
		instruments = append(instruments, counters[i])
	}
	passes, e := m.Int64ObservableCounter("stampede.passes", metric.WithUnit("{request}"),
		metric.WithDescription("Requests passed to the handler untouched, by reason."))
	err = join(err, e)
	unshareable, e := m.Int64ObservableCounter("stampede.unshareable", metric.WithUnit("{run}"),
		metric.WithDescription("Runs whose response could not be shared, by reason."))
	err = join(err, e)
	breakerOpen, e := m.Int64ObservableGauge("stampede.breaker.open",
		metric.WithDescription("1 while the circuit breaker skips the store, else 0."))
	err = join(err, e)
	inFlight, e := m.Int64ObservableGauge("stampede.in_flight", metric.WithUnit("{run}"),
		metric.WithDescription("Handler runs (or loads) started and not ended yet."))
	err = join(err, e)
	entries, e := m.Int64ObservableGauge("stampede.memory.entries", metric.WithUnit("{entry}"),
		metric.WithDescription("Entries held by the in-process store."))
	err = join(err, e)
	bytes, e := m.Int64ObservableGauge("stampede.memory.bytes", metric.WithUnit("By"),
		metric.WithDescription("Bytes the in-process store's entries are charged against its budget (a store bounded by bytes)."))
	err = join(err, e)
	maxEntries, e := m.Int64ObservableGauge("stampede.memory.max_entries", metric.WithUnit("{entry}"),
		metric.WithDescription("The most entries the in-process store holds (a store bounded by its number of entries)."))
	err = join(err, e)
	evictions, e := m.Int64ObservableCounter("stampede.memory.evictions", metric.WithUnit("{entry}"),
		metric.WithDescription("Entries the in-process store evicted to stay within its budget."))
	err = join(err, e)
	if err != nil {
		return nil, fmt.Errorf("stampede/otel: %w", err)
	}
	instruments = append(instruments, passes, unshareable, breakerOpen, inFlight, entries, bytes, maxEntries, evictions)

	reg, err := m.RegisterCallback(func(_ context.Context, obs metric.Observer) error {
		var stores stampede.StoreNames
		for _, src := range sources {
			s := src.Snapshot()
			cache := metric.WithAttributes(keyCache.String(s.Name))
			for i, f := range counterFields {
				obs.ObserveInt64(counters[i], int64(f.get(&s)), cache)
			}
			for _, r := range slices.Sorted(maps.Keys(s.PassReasons)) {
				obs.ObserveInt64(passes, int64(s.PassReasons[r]), metric.WithAttributes(keyCache.String(s.Name), keyReason.String(r)))
			}
			for _, r := range slices.Sorted(maps.Keys(s.Unshareable)) {
				obs.ObserveInt64(unshareable, int64(s.Unshareable[r]), metric.WithAttributes(keyCache.String(s.Name), keyReason.String(r)))
			}
			open := int64(0)
			if s.BreakerOpen {
				open = 1
			}
			obs.ObserveInt64(breakerOpen, open, cache)
			obs.ObserveInt64(inFlight, s.InFlight, cache)
			if mem := s.Memory; mem != nil {
				// A store shared with a source already reported is not reported again.
				if name, first := stores.Name(mem, s.Name); first {
					store := metric.WithAttributes(keyStore.String(name))
					obs.ObserveInt64(entries, int64(mem.Entries), store)
					if mem.MaxEntries > 0 {
						obs.ObserveInt64(maxEntries, int64(mem.MaxEntries), store)
					} else {
						obs.ObserveInt64(bytes, mem.Bytes, store)
					}
					obs.ObserveInt64(evictions, int64(mem.Evictions), store)
				}
			}
		}
		return nil
	}, instruments...)
	if err != nil {
		return nil, fmt.Errorf("stampede/otel: %w", err)
	}
	return reg, nil
}

// isNil reports whether s is nil or holds a nil pointer.
func isNil(s stampede.StatsSource) bool {
	if s == nil {
		return true
	}
	v := reflect.ValueOf(s)
	return v.Kind() == reflect.Pointer && v.IsNil()
}
