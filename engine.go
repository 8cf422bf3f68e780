package stampede

import (
	"context"
	"errors"
	"hash/maphash"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seed-a1426414/stampede/internal/flight"
	"github.com/seed-a1426414/stampede/internal/storecall"
)

// engine is the function API's front-end over the shared mechanisms, for [Loader] (keys of type K, a
// load function fixed at build) and [Stampede] (string keys, a function per call): the flight group
// (internal/flight: epochs, invalidation, panics), the store-call convention (internal/storecall:
// breaker, deadlines, fleet leases, tickets), the stats type and the doorkeeper.
//
// Values live in one of two places, never both: the typed in-process tier (local, keyed by K: a Loader
// without a store), or a store keyed by string store keys (records: values, bytes, or both tiered; a
// Stampede's plain values).
type engine[K comparable, V any] struct {
	name   string
	kind   string // Snapshot.Kind
	cfg    config
	logger *slog.Logger
	seed   maphash.Seed // hashes K for the flight group
	keys   keyer        // store keys: digests and memo only; its prefix is "<prefix>:<version>:{"

	flights flight.Group[K, record[V]]
	calls   *storecall.Calls
	stats   stats
	local   *localTier[K, V] // typed in-process tier; nil when values live in a store
	// localFresh: every record the in-process tier holds is fresh (it drops them at their TTL, and no
	// stale window keeps them longer), so a hit there reads no clock.
	localFresh bool
	store      recordStore[V] // string-keyed store; nil when none
	plain      ValueStore[V]  // the store when it keeps bare values (store is then its plainRecords)
	sizer      any            // what reports the size of what is kept, for Snapshot.Memory; nil when none
	fleet      LeaseStore     // nil unless fleet coalescing is on and the store offers leases
	fenced     FencedStore    // the shared store's fenced writes; nil when it has none
	door       *doorkeeper    // nil unless WithMinUses asks for more than one use
	errTTL     func(error) time.Duration
	skeyOf     func(K) key // k's store key: its digest under the key prefix

	load   func(ctx context.Context, k K) (V, error) // nil for a Stampede: each call brings its own
	batch  BatchLoadFunc[K, V]                       // nil: misses load one key at a time
	buffer *refreshBuffer[K, V]                      // nil unless refreshes are buffered

	background   flight.Tracker // loads and refreshes in flight, on goroutines of their own
	scratch      sync.Pool      // *manyScratch[K, V]: getMany's working space, reused across calls
	decodeLogged atomic.Bool
	stops        []func()         // end the store subscriptions
	echoes       storecall.Echoes // this process's own invalidations, whose announcements come back

	// Test hooks, set before use: onJoin is called as a call starts waiting on another's load,
	// onDropped as an announced invalidation has been applied.
	onJoin    func()
	onDropped atomic.Pointer[func(key string)]
}

// callOpts are the settings of one call: the engine's, or a Do call's own options.
type callOpts[V any] struct {
	ttl  time.Duration
	skip bool                              // coalesce only
	fn   func() (V, *time.Duration, error) // a Do call's function; nil: the engine's load
	// storeFailed: the store did not answer this call's read; its load pays no second timeout (no
	// lease, no ticket: its value is not stored in a store that fences writes).
	storeFailed bool
	// force: the call loads whatever is stored or in flight elsewhere (Refresh): no fleet lease, whose
	// wait could serve another replica's value.
	force bool
}

// maxLoadAttempts bounds how often one call looks in the store again because a load for its key finished
// while it looked; the last attempt waits on or leads a load whatever the store says.
const maxLoadAttempts = 4

// readResult is what one read found.
type readResult uint8

const (
	readMiss readResult = iota
	readFound
	readSkipped // the breaker skipped the store: nothing was read, no epoch to check
	readFailed  // the store did not answer: a miss
)

// ref is one key of one call: the key, its hash, and its store key once computed.
type ref[K comparable] struct {
	k    K
	hash uint64
	sk   key
	hasK bool // sk is computed
}

// ref returns the ref of k.
func (e *engine[K, V]) ref(k K) ref[K] { return ref[K]{k: k, hash: maphash.Comparable(e.seed, k)} }

// storeKey returns r's store key, computing it once.
func (e *engine[K, V]) storeKey(r *ref[K]) key {
	if !r.hasK {
		r.sk, r.hasK = e.skeyOf(r.k), true
	}
	return r.sk
}

// spec describes r's flight; its alias is the store key when values live in a store, so that an
// invalidation announced by store key finds it.
func (e *engine[K, V]) spec(r *ref[K]) flight.Spec[K] {
	s := flight.Spec[K]{Key: r.k, Hash: r.hash}
	if e.store != nil {
		s.Alias = e.storeKey(r).s
	}
	return s
}

// read reads r's record from where values live. The in-process tier needs no breaker: it is memory.
func (e *engine[K, V]) read(ctx context.Context, r *ref[K]) (record[V], readResult) {
	if e.local != nil {
		if it, ok := e.local.get(r.k); ok {
			return it.rec, readFound
		}
		return record[V]{}, readMiss
	}
	sk := e.storeKey(r).s
	rec, res := storecall.Read(e.calls, ctx, func(ctx context.Context) (record[V], bool, error) {
		return e.store.get(ctx, sk)
	})
	switch res {
	case storecall.Skipped:
		return rec, readSkipped
	case storecall.Found:
		return rec, readFound
	case storecall.Failed:
		return rec, readFailed
	}
	return rec, readMiss
}

// badValue logs, once per engine, a stored value that does not decode; it counts as a miss.
func (e *engine[K, V]) badValue(err error) {
	e.stats.decodeErrors.Add(1)
	if e.decodeLogged.CompareAndSwap(false, true) {
		e.logger.Warn("stampede: a stored value does not decode; treated as a miss and loaded again (logged once)",
			"loader", e.name, "error", err)
	}
}

// hit counts a call answered from the store with rec.
func (e *engine[K, V]) hit(rec *record[V]) {
	e.stats.hits.Add(1)
	if rec.err != nil {
		e.stats.cachedErrors.Add(1)
	}
}

// get returns k's value: the stored one when it is usable, else the value of the load in flight for
// k, else the value of a load this call starts. See docs/behaviour.md §8.
func (e *engine[K, V]) get(ctx context.Context, r *ref[K], co callOpts[V]) (V, error) {
	if e.plain != nil && !co.skip {
		v, ok, missedAt, failed := e.hitPlain(ctx, r)
		if ok {
			return v, nil
		}
		co.storeFailed = failed
		return e.lookupOrLoad(ctx, r, co, missedAt)
	}
	return e.lookupOrLoad(ctx, r, co, flight.NoEpoch)
}

// hitPlain is the hit path of a store of bare values, whose every value is fresh: it reads the store
// directly and counts a hit. On a miss, missedAt is the epoch it read at, for lookupOrLoad, or NoEpoch
// when it read nothing; failed says the store did not answer (the call then makes no other store call).
func (e *engine[K, V]) hitPlain(ctx context.Context, r *ref[K]) (v V, ok bool, missedAt uint64, failed bool) {
	epoch := e.flights.Epoch(r.hash)
	allowed, probe := e.calls.Begin()
	if !allowed {
		return v, false, flight.NoEpoch, false
	}
	sk := e.storeKey(r).s
	var found bool
	var err error
	if e.calls.Bounded() {
		v, found, err = e.plain.Get(ctx, sk)
	} else {
		sctx, bound := e.calls.Ctx(ctx)
		v, found, err = e.plain.Get(sctx, sk)
		bound.Release()
	}
	if err != nil || probe || e.calls.Breaker().Open() {
		e.calls.EndRead(ctx, probe, err)
	}
	if err != nil || !found {
		var zero V
		return zero, false, epoch, err != nil
	}
	e.stats.hits.Add(1)
	return v, true, 0, false
}

// lookupOrLoad is get. missedAt, unless NoEpoch, says the caller has read the store at that epoch and
// found nothing: the first attempt reads it no more. (The function API counts a call by its outcome
// alone: see Snapshot.Requests.)
func (e *engine[K, V]) lookupOrLoad(ctx context.Context, r *ref[K], co callOpts[V], missedAt uint64) (V, error) {
	stored := (e.local != nil || e.store != nil) && !co.skip
	var stale *record[V]
	for attempt := 0; ; attempt++ {
		if f := e.flights.Lookup(r.k, r.hash); f != nil && !f.Soft() {
			rec, err, again := e.join(ctx, f, stale, asWaiter)
			if again {
				missedAt = flight.NoEpoch
				continue
			}
			return rec.val, err
		}
		epoch := flight.NoEpoch
		if attempt == 0 && missedAt != flight.NoEpoch {
			epoch = missedAt
		} else if stored && attempt < maxLoadAttempts && !co.storeFailed { // a failed read is the call's last
			epoch = e.flights.Epoch(r.hash)
			rec, res := e.read(ctx, r)
			switch res {
			case readSkipped:
				epoch = flight.NoEpoch
			case readFailed:
				co.storeFailed = true
			case readFound:
				switch rec.state(e.cfg.clock) {
				case recFresh:
					e.hit(&rec)
					if rec.err == nil && e.cfg.xfetchBeta > 0 && e.early(&rec) {
						e.refresh(ctx, *r, co)
					}
					return rec.val, rec.err
				case recStale:
					e.stats.staleHits.Add(1)
					e.refresh(ctx, *r, co)
					return rec.val, nil
				case recStaleError:
					kept := rec // only this path puts a record on the heap
					stale = &kept
				}
			}
		}
		if err := ctx.Err(); err != nil {
			e.stats.abandoned.Add(1)
			var zero V
			return zero, err // a caller that stopped waiting starts nothing
		}
		f, leader, retry := e.flights.Acquire(e.spec(r), epoch)
		switch {
		case retry != flight.NoRetry:
			continue // a load for k may have stored its value since we looked: look again
		case leader:
			e.lead(ctx, f, r, co, stale, e.admit(r))
		}
		rec, err, again := e.join(ctx, f, stale, roleOf(leader))
		if again {
			continue
		}
		return rec.val, err
	}
}

// joinRole is how a call waiting on a flight takes part in it.
type joinRole uint8

const (
	asWaiter joinRole = iota // counted as coalesced
	asLeader                 // started the load: counted as a miss already, re-raises its panic
	asMember                 // a key of a batch load this call leads: counted as a miss already
)

func roleOf(leader bool) joinRole {
	if leader {
		return asLeader
	}
	return asWaiter
}

// admit reports whether the doorkeeper lets r's value be stored.
func (e *engine[K, V]) admit(r *ref[K]) bool {
	if e.door == nil {
		return true
	}
	return e.door.use(key{s: e.storeKey(r).s, id: r.hash, shard: flight.ShardOf(r.hash)}, e.cfg.clock())
}

// xfetch reports whether a fresh value should be refreshed early (Vattani, Chierichetti, Lowenstein,
// "Optimal Probabilistic Cache Stampede Prevention", VLDB 2015; see [WithEarlyRefresh]): refresh when
// now - delta*beta*ln(rand) >= expiry, where delta is how long computing it took. The closer to expiry
// and the slower the computation, the likelier; with many callers near expiry one of them refreshes the
// value before it expires instead of all missing together. Both front-ends use it.
func xfetch(expiry time.Time, delta time.Duration, now time.Time, beta float64) bool {
	if delta <= 0 || beta <= 0 {
		return false
	}
	gap := -float64(delta) * beta * math.Log(1-rand.Float64()) // rand in (0,1]: ln <= 0
	return !now.Add(time.Duration(gap)).Before(expiry)
}

// early reports whether a fresh record should be refreshed now (XFetch, see [WithEarlyRefresh]).
func (e *engine[K, V]) early(rec *record[V]) bool {
	if rec.storedAt.IsZero() {
		return false
	}
	return xfetch(rec.storedAt.Add(rec.ttl), rec.compute, e.cfg.clock(), e.cfg.xfetchBeta)
}

// lead starts f's load on a goroutine of its own, so that the calling goroutine (and every other) may
// stop waiting when its context ends, or at the compute timeout, while the load goes on, detached, for
// the others.
func (e *engine[K, V]) lead(ctx context.Context, f *flight.Flight[K, record[V]], r *ref[K], co callOpts[V], stale *record[V], admitted bool) {
	e.stats.misses.Add(1)
	base := detached(ctx)
	st, rr := flight.NewLead(), *r
	f.Lead = st
	e.background.Add()
	go func() {
		defer e.background.Done()
		defer func() {
			if p := recover(); p != nil {
				<-st.Left()
				if !st.Raised() {
					e.stats.logs.log(context.Background(), e.logger, logLoadPanic, slog.LevelError,
						"stampede: load panicked", "loader", e.name, "panic", p)
				}
			}
		}()
		e.runLoad(base, f, &rr, co, stale, admitted)
	}()
}

// detached returns ctx without its cancellation and deadline: ctx itself when it has neither (a
// context whose Done is nil never ends), which spares an allocation per load.
func detached(ctx context.Context) context.Context {
	if _, ok := ctx.Deadline(); !ok && ctx.Done() == nil {
		return ctx
	}
	return context.WithoutCancel(ctx)
}

// join waits for f. again is true when the caller should look again: the load called runtime.Goexit.
// A leading caller re-raises a panic of its load, with the same value.
func (e *engine[K, V]) join(ctx context.Context, f *flight.Flight[K, record[V]], stale *record[V], role joinRole) (rec record[V], err error, again bool) {
	leader := role == asLeader
	var st *flight.Lead
	if leader && f.Lead != nil {
		st = f.Lead
		defer st.Leave()
	}
	if role == asWaiter && e.onJoin != nil {
		e.onJoin()
	}
	rec, err = f.Wait(ctx)
	waiter := role == asWaiter // a leader's or member's call is counted as a miss already
	count := func(c *atomic.Uint64) {
		if waiter {
			c.Add(1)
		}
	}
	// The flight publishes a panic as a *flight.Panic itself, never wrapped: a type assertion finds it
	// without errors.As, whose target would move to the heap on every join.
	pe, _ := err.(*flight.Panic) //nolint:errorlint // compared as the flight publishes it
	switch {
	case err == nil:
		count(&e.stats.coalesced)
		return rec, rec.err, false
	case ctx.Err() != nil:
		count(&e.stats.abandoned)
		return record[V]{}, ctx.Err(), false
	case errors.Is(err, flight.ErrGoexit):
		if leader {
			runtime.Goexit()
		}
		return rec, nil, true
	case errors.Is(err, flight.ErrSuperseded):
		return rec, nil, true
	case errors.Is(err, flight.ErrExpired):
		if stale != nil {
			count(&e.stats.staleHits)
			return *stale, nil, false
		}
		count(&e.stats.failed)
		return record[V]{}, ErrComputeTimeout, false
	case pe != nil || err == http.ErrAbortHandler: //nolint:errorlint // compared as the flight publishes it
		if leader && st != nil {
			st.Repanicked()
			if pe != nil {
				panic(pe.Value)
			}
			panic(err)
		}
		count(&e.stats.failed)
		if pe != nil {
			return record[V]{}, &PanicError{Value: pe.Value, Stack: pe.Stack}, false
		}
		return record[V]{}, err, false
	}
	return record[V]{}, err, false
}

// loadCtx returns the context a load runs with: base (detached from the caller) bounded by the compute
// timeout. At the timeout the flights are expired, so callers arriving later start loads of their own,
// and their waiters are told.
func (e *engine[K, V]) loadCtx(base context.Context, fs ...*flight.Flight[K, record[V]]) (context.Context, func()) {
	ctx, cancel := context.WithTimeout(base, e.cfg.computeTimeout)
	// The context's own timer expires the flights too (one timer per load, not two): the function runs
	// when ctx ends, and stop keeps it from running when the load ends first.
	stop := context.AfterFunc(ctx, func() {
		for _, f := range fs {
			e.flights.Expire(f)
		}
	})
	return ctx, func() {
		stop()
		cancel()
	}
}

// leadStore is what a load does with a shared store before it starts: with fleet coalescing, the
// fleet step (served: another replica's stored value was published to f); then, for a store that
// fences writes, the ticket its write will carry, which must be taken before the load reads anything.
func (e *engine[K, V]) leadStore(ctx context.Context, f *flight.Flight[K, record[V]], r *ref[K], co callOpts[V]) (ld storecall.Lead, served bool) {
	if e.fenced == nil || co.skip || co.storeFailed {
		return ld, false
	}
	sk := e.storeKey(r).s
	if e.fleet != nil && !f.Soft() && !co.force {
		fctx, cancel := context.WithTimeout(ctx, e.cfg.fleetLease+e.cfg.storeTimeout)
		defer cancel()
		var res storecall.FleetResult
		ld, res = e.calls.Fleet(fctx, e.fleet, sk, e.cfg.fleetLease, func(ctx context.Context) storecall.ServeResult {
			return e.fleetServe(ctx, f, r)
		})
		switch res {
		case storecall.FleetServed:
			return ld, true
		case storecall.FleetFailed:
			return ld, false // no second store timeout: no ticket, so the load does not write
		}
		if ld.Leased {
			return ld, false
		}
	}
	ld, _ = e.calls.Ticket(ctx, e.fenced, sk, e.ticketTTL())
	return ld, false
}

// ticketTTL is how long a load's ticket stays valid: longer than any load may take to write.
func (e *engine[K, V]) ticketTTL() time.Duration {
	return e.cfg.computeTimeout + 4*e.cfg.storeTimeout
}

// fleetServe publishes to f the fresh record another replica stored for r, when there is one.
func (e *engine[K, V]) fleetServe(ctx context.Context, f *flight.Flight[K, record[V]], r *ref[K]) storecall.ServeResult {
	rec, res := e.read(ctx, r)
	switch {
	case res == readFailed:
		return storecall.ServeFailed
	case res != readFound || rec.state(e.cfg.clock) != recFresh:
		return storecall.ServeNone
	}
	e.flights.Run(f, func() (record[V], func()) { return rec, nil })
	e.stats.fleetServed.Add(1)
	return storecall.ServeDone
}

// runLoad runs a load: the store step, then the load through the flight group, which publishes its
// record and persists it before the flight is forgotten.
func (e *engine[K, V]) runLoad(base context.Context, f *flight.Flight[K, record[V]], r *ref[K], co callOpts[V], stale *record[V], admitted bool) {
	ctx, done := e.loadCtx(base, f)
	defer done()
	ld, served := e.leadStore(ctx, f, r, co)
	if served {
		return
	}
	handed := false
	defer func() {
		if !handed {
			e.calls.Release(e.fleet, ld, storecall.OutcomeMiss) // the load panicked or called Goexit
		}
	}()
	e.flights.Run(f, func() (record[V], func()) {
		start := time.Now()
		e.stats.running.Add(1) // until ran
		finished := false
		defer func() {
			if !finished {
				e.stats.ran(time.Since(start), 0, false)
			}
		}()
		var v V
		var ttl *time.Duration
		var err error
		if co.fn != nil {
			v, ttl, err = co.fn()
		} else {
			v, err = e.load(ctx, r.k)
		}
		d := time.Since(start)
		finished = true
		e.stats.ran(d, statusOf(err), true)
		e.loadEnded(ctx, r, d, err)
		rec, storeTTL := e.newRecord(v, err, ttl, co, d)
		if co.skip {
			storeTTL = 0 // this call coalesces only (WithSkipCache)
		}
		handed = true
		if err != nil && stale != nil {
			// stale-if-error: serve what the store has, keep it there
			return *stale, func() { e.calls.Release(e.fleet, ld, storecall.OutcomeMiss) }
		}
		return rec, e.persistWork(f, r, rec, storeTTL, ld, admitted)
	})
}

// statusOf is the run status the stats count a load's outcome as.
func statusOf(err error) int {
	if err != nil && !errors.Is(err, ErrNotFound) {
		return http.StatusInternalServerError
	}
	return http.StatusOK
}

// newRecord makes the record of a load's outcome and the TTL to store it for (zero: not stored). A value
// is fresh for the call's TTL, or the TTL a Do function returned; a failure is kept only as long as
// WithErrorTTL says.
func (e *engine[K, V]) newRecord(v V, err error, ttl *time.Duration, co callOpts[V], compute time.Duration) (record[V], time.Duration) {
	rec := record[V]{val: v, err: err, storedAt: e.cfg.clock(), compute: compute}
	if err != nil {
		if e.errTTL != nil {
			rec.ttl = e.errTTL(err)
		}
		return rec, max(rec.ttl, 0)
	}
	rec.ttl = co.ttl
	if ttl != nil {
		rec.ttl = *ttl
	}
	if rec.ttl <= 0 {
		return rec, 0
	}
	rec.swr, rec.sie = e.cfg.staleWhileRevalidate, e.cfg.staleIfError
	return rec, rec.usable()
}

// persistItem is the store write of one flight's record: what persist does once the flight is published.
type persistItem[K comparable, V any] struct {
	f        *flight.Flight[K, record[V]]
	r        ref[K]
	rec      record[V]
	ttl      time.Duration // zero: nothing to write
	ld       storecall.Lead
	admitted bool
}

// needed reports whether a record to keep for ttl (zero: none) has anything to persist: a write, or
// at least a fleet lease to release.
func (e *engine[K, V]) needed(ttl time.Duration, ld storecall.Lead, admitted bool) bool {
	return (e.local != nil || e.store != nil) && ttl > 0 && admitted || ld.Leased
}

// persist writes f's record rec for r (through the flight group: refused once an invalidation reached
// f) and releases its lease.
func (e *engine[K, V]) persist(f *flight.Flight[K, record[V]], r *ref[K], rec *record[V], ttl time.Duration, ld storecall.Lead, admitted bool) {
	outcome := storecall.OutcomeMiss
	defer func() { e.calls.Release(e.fleet, ld, outcome) }()
	if (e.local == nil && e.store == nil) || ttl <= 0 || !admitted {
		return
	}
	if e.flights.Write(f, func() bool { return e.write(r, rec, ttl, ld) }) {
		outcome = storecall.OutcomeStored
	}
}

// persistWork returns the write of rec, run before the flight is forgotten (zero duplicate loads), or
// nil when nothing is to be written. With a fleet lease it always returns work: the lease must be
// released.
func (e *engine[K, V]) persistWork(f *flight.Flight[K, record[V]], r *ref[K], rec record[V], ttl time.Duration, ld storecall.Lead, admitted bool) func() {
	if !e.needed(ttl, ld, admitted) {
		return nil
	}
	p := &persistItem[K, V]{f: f, r: *r, rec: rec, ttl: ttl, ld: ld, admitted: admitted}
	return func() { e.persist(p.f, &p.r, &p.rec, p.ttl, p.ld, p.admitted) }
}

// write stores rec for r where values live, and reports whether it was stored. The in-process tier
// takes it at once; a store goes through the store-call convention, fenced by ld when the store fences
// writes.
func (e *engine[K, V]) write(r *ref[K], rec *record[V], ttl time.Duration, ld storecall.Lead) bool {
	if e.local != nil {
		e.local.set(r.k, rec, ttl)
		return true
	}
	sk := e.storeKey(r).s
	stored, err := e.calls.Write("set", func(ctx context.Context) (bool, error) {
		return e.store.set(ctx, sk, rec, ttl, ld)
	})
	switch {
	case errors.Is(err, storecall.ErrPanicked):
		e.stats.logs.log(context.Background(), e.logger, logStorePanic, slog.LevelError,
			"stampede: store panicked on write", "loader", e.name)
	case err == nil && !stored && ld.Expired():
		e.stats.logs.log(context.Background(), e.logger, logLeaseExpired, slog.LevelWarn,
			"stampede: lease expired before the value was stored; it is not stored",
			"loader", e.name, "lease", e.cfg.fleetLease)
	}
	return stored
}

// refresh starts a background load of r unless a load of it is in flight; the stale or nearly expired
// value is served meanwhile. With refresh buffering the key joins the next batch instead.
func (e *engine[K, V]) refresh(ctx context.Context, r ref[K], co callOpts[V]) {
	f, leader := e.flights.AcquireSoft(e.spec(&r))
	if !leader {
		return
	}
	e.stats.refreshes.Add(1)
	base := detached(ctx)
	if e.buffer != nil && co.fn == nil {
		e.buffer.add(base, r, f)
		return
	}
	e.background.Add()
	go func() {
		defer e.background.Done()
		defer e.recoverBackground()
		e.runLoad(base, f, &r, co, nil, true)
	}()
}

// recoverBackground logs a panic of a load nobody waits on.
func (e *engine[K, V]) recoverBackground() {
	if p := recover(); p != nil {
		e.stats.logs.log(context.Background(), e.logger, logRefreshPanic, slog.LevelError,
			"stampede: background refresh panicked", "loader", e.name, "panic", p)
	}
}

// set stores v for k now, as a load would have. Once it returns, no read returns, and no write stores, a
// value of a load that started before it (docs/behaviour.md §11).
func (e *engine[K, V]) set(ctx context.Context, k K, v V, co callOpts[V]) error {
	r := e.ref(k)
	// Earlier loads of k are neither joined nor stored from now on; callers arriving while Set runs wait
	// for its value. Unless it is published, they look again.
	f := e.flights.Start(e.spec(&r))
	published := false
	defer func() {
		if !published {
			f.Publish(record[V]{}, flight.ErrSuperseded)
		}
		e.flights.End(f)
	}()
	if err := ctx.Err(); err != nil {
		return err
	}
	if e.local == nil && e.store == nil {
		return nil
	}
	rec, ttl := e.newRecord(v, nil, nil, co, 0)
	if ttl <= 0 {
		return e.drop(ctx, &r)
	}
	if e.local != nil {
		if e.flights.Write(f, func() bool { e.local.set(r.k, &rec, ttl); return true }) {
			f.Publish(rec, nil)
			published = true
		}
		return nil
	}
	var ld storecall.Lead
	if e.fenced != nil {
		// Revoke the tickets of other replicas' loads of k, then write with a ticket of our own.
		if err := e.dropStored(ctx, &r); err != nil {
			return errors.Join(ErrNotStored, err)
		}
		var ok bool
		if ld, ok = e.calls.Ticket(ctx, e.fenced, e.storeKey(&r).s, e.ticketTTL()); !ok {
			return ErrNotStored
		}
	}
	var stored bool
	if !e.flights.Write(f, func() bool { stored = e.write(&r, &rec, ttl, ld); return stored }) {
		return nil // an invalidation came after Set: it wins, as if it came after Set returned
	}
	if !stored {
		return ErrNotStored
	}
	f.Publish(rec, nil)
	published = true
	return nil
}

// ErrNotStored is what [Loader.Set] returns when the store did not take the value (it failed, timed out
// or is skipped by the circuit breaker).
var ErrNotStored = errors.New("stampede: value not stored")

// invalidate removes what is kept for the keys. Once it returns, no read returns, and no write stores,
// a value of a load that started before it: loads in flight still answer the callers already waiting
// on them (docs/behaviour.md §11).
func (e *engine[K, V]) invalidate(ctx context.Context, ks []K) error {
	var errs []error
	for _, k := range ks {
		r := e.ref(k)
		errs = append(errs, e.drop(ctx, &r))
	}
	return errors.Join(errs...)
}

// drop invalidates r: its flights first (no longer joined, their writes refused, the writes in progress
// waited for), then what is kept for it.
func (e *engine[K, V]) drop(ctx context.Context, r *ref[K]) error {
	var err error
	e.flights.Invalidate(r.k, r.hash, func() {
		switch {
		case e.local != nil:
			e.local.del(r.k)
		case e.store != nil:
			err = e.dropStored(ctx, r)
		}
	})
	return err
}

// dropStored deletes r from the store (revoking its tickets when the store fences writes).
func (e *engine[K, V]) dropStored(ctx context.Context, r *ref[K]) error {
	sk := e.storeKey(r).s
	e.echoes.Expect(sk)
	return e.calls.Delete(ctx, func(ctx context.Context) error { return e.store.del(ctx, sk) })
}

// invalidatedElsewhere is told of a store key invalidated through any replica (this one included): the
// loads of this process it reaches are no longer joined.
func (e *engine[K, V]) invalidatedElsewhere(storeKey string) {
	if e.echoes.Own(storeKey) {
		return
	}
	e.flights.InvalidateFunc(func(f *flight.Flight[K, record[V]]) bool { return f.Alias() == storeKey }, nil)
}

// forceLoad loads k now, whatever is kept, and returns the value; the loads of k in flight when it is
// called are neither joined nor stored (they started before it). A call that arrives while it loads
// joins its load.
func (e *engine[K, V]) forceLoad(ctx context.Context, k K, co callOpts[V]) (V, error) {
	r := e.ref(k)
	var zero V
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	co.force = true
	for {
		f := e.flights.Start(e.spec(&r))
		if e.local != nil {
			e.local.del(r.k) // a hit must not find the value this load replaces: it joins the load instead
		}
		if e.fenced != nil && !co.skip {
			// Other replicas' loads of k started before this one: revoke their tickets.
			_ = e.dropStored(ctx, &r)
		}
		e.lead(ctx, f, &r, co, nil, true)
		rec, err, again := e.join(ctx, f, nil, asLeader)
		if !again {
			return rec.val, err
		}
	}
}

// peek returns what get would serve for k without loading or refreshing anything.
func (e *engine[K, V]) peek(ctx context.Context, k K) (V, bool) {
	var zero V
	if e.local == nil && e.store == nil {
		return zero, false
	}
	r := e.ref(k)
	rec, res := e.read(ctx, &r)
	if res != readFound || rec.err != nil {
		return zero, false
	}
	if s := rec.state(e.cfg.clock); s != recFresh && s != recStale {
		return zero, false
	}
	return rec.val, true
}

// defaultCall returns the settings of a call that brings none of its own.
func (e *engine[K, V]) defaultCall() callOpts[V] {
	return callOpts[V]{ttl: e.cfg.ttl, skip: e.cfg.skipCache}
}

// wait blocks until every load, refresh and store write started so far has finished.
func (e *engine[K, V]) wait() {
	if e.buffer != nil {
		e.buffer.flush()
	}
	e.background.Wait()
	e.flights.Wait()
}

// close flushes buffered refreshes, waits for everything in flight and ends the store subscriptions.
func (e *engine[K, V]) close() {
	e.wait()
	for _, stop := range e.stops {
		stop()
	}
	e.stops = nil
	if e.local != nil {
		e.local.close()
	}
}

// snapshot returns the engine's counters.
func (e *engine[K, V]) snapshot() Snapshot {
	return e.stats.snapshot(e.name, e.kind, e.calls.Breaker(), e.sizer)
}
