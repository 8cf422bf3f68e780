package stampede

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/seed-a1426414/stampede/internal/flight"
	"github.com/seed-a1426414/stampede/internal/storecall"
)

// BatchLoadFunc loads the values of many keys in one call (one SQL query with IN, one RPC). A key the
// returned map leaves out does not exist: it counts as [ErrNotFound] for that key. An error fails
// every key of the call.
type BatchLoadFunc[K comparable, V any] func(ctx context.Context, keys []K) (map[K]V, error)

// manySlot is one distinct key of a getMany call.
type manySlot[K comparable, V any] struct {
	r     ref[K]
	epoch uint64
	stale *record[V]
	f     *flight.Flight[K, record[V]]
	role  joinRole
	done  bool // answered from what is kept, with val and err
	val   V
	err   error
	// answered: the key's value is in getMany's map (every key is put there first, as a placeholder).
	answered bool
}

// getMany is get for many keys: one read of what is kept for all of them (one batched store call),
// then, for the keys it did not answer, the loads in flight (whoever started them: a key that another
// call is loading, alone or in a batch, is taken from that load) and one batch load for the rest. See
// the behaviour contract, §8.
func (e *engine[K, V]) getMany(ctx context.Context, ks []K) (map[K]V, error) {
	// out is also the set of keys seen, so that duplicates count once without a map of their own: each
	// distinct key is put in it at once (its zero value), and those left without a value are deleted
	// from it before it is returned (see settle).
	out := make(map[K]V, len(ks))
	sc := e.scratchFor(len(ks))
	defer e.putScratch(sc) // registered first, so it runs after every other deferred use of the slots
	slots := sc.slots[:0]
	for _, k := range ks {
		if _, dup := out[k]; !dup {
			var zero V
			out[k] = zero
			slots = append(slots, manySlot[K, V]{r: e.ref(k)})
		}
	}
	// readEarly: the in-process tier answers what it holds before anything else is set up (a batch of
	// hits costs a look-up per key and nothing more), and what it did not hold was read at the epochs
	// readLocal took, as lookupOrLoad's missedAt: the first attempt reads it no more.
	readEarly := e.local != nil
	if readEarly {
		e.readLocal(ctx, slots)
	}

	// The lists of slots, each at most len(slots) long, share one allocation.
	n := len(slots)
	lists := sc.lists[:3*n]
	waiting := lists[0:0:n] // slots whose value comes from a flight
	pending := lists[n : n : 2*n]
	toRead := lists[2*n : 2*n : 3*n]
	for i := range slots {
		if !slots[i].done {
			pending = append(pending, &slots[i])
		}
	}
	stored := e.local != nil || e.store != nil
	failed := false // the store did not answer a read: the call makes no other store call
	var retry, mine []*manySlot[K, V]
	for attempt := 0; len(pending) > 0; attempt++ {
		toRead = toRead[:0]
		readAlready := readEarly && attempt == 0
		for _, s := range pending {
			if f := e.flights.Lookup(s.r.k, s.r.hash); f != nil && !f.Soft() {
				s.f = f
				waiting = append(waiting, s)
				continue
			}
			if !readAlready {
				s.epoch = flight.NoEpoch
			}
			toRead = append(toRead, s)
		}
		if stored && attempt < maxLoadAttempts && len(toRead) > 0 && !failed && !readAlready {
			failed = e.readMany(ctx, toRead)
		}
		if ctx.Err() != nil {
			break // a call that stopped waiting starts nothing
		}
		retry, mine = retry[:0], mine[:0]
		for _, s := range toRead {
			if s.done {
				continue
			}
			f, leader, again := e.flights.Acquire(e.spec(&s.r), s.epoch)
			switch {
			case again != flight.NoRetry:
				retry = append(retry, s)
			case leader:
				s.f, s.role = f, asLeader
				mine = append(mine, s)
				waiting = append(waiting, s)
			default:
				s.f = f
				waiting = append(waiting, s)
			}
		}
		e.leadMany(ctx, mine, failed)
		pending, retry = retry, pending[:0] // pending's slots are all elsewhere now: its array is free
	}

	defer func() {
		for _, s := range waiting { // a call that returns early has stopped waiting for its loads too
			if s.role == asLeader && s.f.Lead != nil {
				s.f.Lead.Leave()
			}
		}
	}()
	var errs []error
	for i := range slots {
		s := &slots[i]
		if !s.done {
			continue
		}
		if s.err == nil {
			out[s.r.k], s.answered = s.val, true
		} else if !errors.Is(s.err, ErrNotFound) {
			errs = append(errs, keyError(s.r.k, s.err))
		}
	}
	if err := ctx.Err(); err != nil {
		for i := range slots {
			if !slots[i].done && slots[i].f == nil {
				e.stats.abandoned.Add(1)
			}
		}
	}
	for i, s := range waiting {
		rec, err, again := e.join(ctx, s.f, s.stale, s.role)
		if again { // the load called runtime.Goexit: this key alone, again
			rec.val, err = e.lookupOrLoad(ctx, &s.r, e.defaultCall(), flight.NoEpoch)
		}
		switch {
		case err == nil:
			out[s.r.k], s.answered = rec.val, true
		case ctx.Err() != nil:
			for _, rest := range waiting[i+1:] {
				if rest.role == asWaiter { // the keys this call leads are counted as misses already
					e.stats.abandoned.Add(1)
				}
			}
			return settle(out, slots), ctx.Err()
		case !errors.Is(err, ErrNotFound):
			errs = append(errs, keyError(s.r.k, err))
		}
	}
	if err := ctx.Err(); err != nil {
		return settle(out, slots), err
	}
	return settle(out, slots), errors.Join(errs...)
}

// settle deletes from out the keys of the slots that got no value (getMany put every key in it).
func settle[K comparable, V any](out map[K]V, slots []manySlot[K, V]) map[K]V {
	for i := range slots {
		if !slots[i].answered {
			delete(out, slots[i].r.k)
		}
	}
	return out
}

// manyScratch is what a getMany call needs only while it runs: its slots (some 150 bytes per key) and
// its lists of them, reused by later calls through the engine's pool rather than allocated and
// collected on every call.
type manyScratch[K comparable, V any] struct {
	slots []manySlot[K, V]
	lists []*manySlot[K, V]
}

// maxPooledKeys bounds the scratch space a pool keeps: a call for more keys allocates its own.
const maxPooledKeys = 1024

// scratchFor returns scratch space for n keys.
func (e *engine[K, V]) scratchFor(n int) *manyScratch[K, V] {
	sc, _ := e.scratch.Get().(*manyScratch[K, V])
	if sc == nil {
		sc = new(manyScratch[K, V])
	}
	if cap(sc.slots) < n {
		sc.slots = make([]manySlot[K, V], 0, n)
		sc.lists = make([]*manySlot[K, V], 3*n)
	}
	return sc
}

// putScratch clears sc (no value or flight stays reachable from the pool) and returns it to the pool.
func (e *engine[K, V]) putScratch(sc *manyScratch[K, V]) {
	if cap(sc.slots) > maxPooledKeys {
		return
	}
	clear(sc.slots[:cap(sc.slots)])
	clear(sc.lists)
	e.scratch.Put(sc)
}

// keyError says which key an error of a getMany call is for.
func keyError[K comparable](k K, err error) error { return fmt.Errorf("stampede: key %v: %w", k, err) }

// readLocal answers from the in-process tier the slots whose record it holds, as readMany would, and
// gives the others the epoch it read them at.
func (e *engine[K, V]) readLocal(ctx context.Context, slots []manySlot[K, V]) {
	for i := range slots {
		s := &slots[i]
		s.epoch = e.flights.Epoch(s.r.hash)
		it, ok := e.local.get(s.r.k)
		if !ok {
			continue
		}
		e.answer(ctx, s, &it.rec, true)
	}
}

// answer settles s from a record read for it: a hit (fresh, or stale within stale-while-revalidate,
// refreshed meanwhile), or a stale record kept for stale-if-error.
func (e *engine[K, V]) answer(ctx context.Context, s *manySlot[K, V], rec *record[V], local bool) {
	st := recFresh
	if !local || !e.localFresh {
		st = rec.state(e.cfg.clock)
	}
	switch st {
	case recFresh:
		e.hit(rec)
		s.done, s.val, s.err = true, rec.val, rec.err
		if rec.err == nil && e.cfg.xfetchBeta > 0 && e.early(rec) {
			e.refresh(ctx, s.r, e.defaultCall())
		}
	case recStale:
		e.stats.staleHits.Add(1)
		s.done, s.val, s.err = true, rec.val, rec.err
		e.refresh(ctx, s.r, e.defaultCall())
	case recStaleError:
		kept := *rec
		s.stale = &kept
	}
}

// readMany reads the slots' keys in one batched store call and answers those it can. The epoch of each
// is read before the store is, as get does (on a later attempt the in-process tier is read again here:
// a value a load stored since readLocal must not be missed). failed says the store did not answer.
func (e *engine[K, V]) readMany(ctx context.Context, slots []*manySlot[K, V]) (failed bool) {
	if e.local != nil {
		for _, s := range slots {
			s.epoch = e.flights.Epoch(s.r.hash)
			if it, ok := e.local.get(s.r.k); ok {
				e.answer(ctx, s, &it.rec, true)
			}
		}
		return false
	}
	ok, probe := e.calls.Begin()
	if !ok {
		return false // skipped: nothing read, the epochs stay NoEpoch
	}
	keys := make([]string, len(slots))
	for i, s := range slots {
		s.epoch = e.flights.Epoch(s.r.hash)
		keys[i] = e.storeKey(&s.r).s
	}
	recs, found := make([]record[V], len(slots)), make([]bool, len(slots))
	sctx, bound := e.calls.Ctx(ctx)
	err := e.store.getMany(sctx, keys, recs, found)
	bound.Release()
	e.calls.EndRead(ctx, probe, err)
	for i, s := range slots {
		if found[i] {
			e.answer(ctx, s, &recs[i], false)
		}
	}
	return err != nil
}

// leadMany starts the loads of the flights a getMany call leads: one batch load for all of them when
// there is a batch load function, else one load each (concurrently, each on its own goroutine).
// storeFailed says the call's read failed: the loads make no store call before they run (no ticket, so
// they do not write to a store that fences writes).
func (e *engine[K, V]) leadMany(ctx context.Context, mine []*manySlot[K, V], storeFailed bool) {
	if len(mine) == 0 {
		return
	}
	co := e.defaultCall()
	co.storeFailed = storeFailed
	if e.batch == nil || len(mine) == 1 && e.load != nil {
		for _, s := range mine {
			e.lead(ctx, s.f, &s.r, co, s.stale, e.admit(&s.r))
		}
		return
	}
	b := newBatchRun[K, V](detached(ctx), flight.NewLead(), len(mine))
	b.storeFailed = storeFailed
	for _, s := range mine {
		e.stats.misses.Add(1)
		b.add(s.r, s.f, s.stale, e.admit(&s.r))
	}
	// One Lead for the batch: the first flight carries it, so the call re-raises a panic once.
	mine[0].f.Lead = b.st
	e.background.Add()
	go func() {
		defer e.background.Done()
		defer func() {
			if p := recover(); p != nil {
				<-b.st.Left()
				if !b.st.Raised() {
					e.stats.logs.log(context.Background(), e.logger, logBatchPanic, slog.LevelError,
						"stampede: batch load panicked", "loader", e.name, "panic", p)
				}
			}
		}()
		e.runBatch(b)
	}()
	for _, s := range mine[1:] {
		s.role = asMember // the call re-raises the batch's panic once, through mine[0]
	}
}

// batchRun is one call of the batch load function, for the flights of the keys it loads.
type batchRun[K comparable, V any] struct {
	base  context.Context
	st    *flight.Lead // nil for a buffered refresh, which nobody waits on
	refs  []ref[K]
	fs    []*flight.Flight[K, record[V]]
	stale []*record[V]
	admit []bool
	// storeFailed: the read of the call that leads it failed; it takes no tickets (and so writes
	// nothing to a store that fences writes).
	storeFailed bool
}

// newBatchRun returns a batch of room for n keys, its slices in two allocations rather than growing.
func newBatchRun[K comparable, V any](base context.Context, st *flight.Lead, n int) *batchRun[K, V] {
	b := &batchRun[K, V]{base: base, st: st, refs: make([]ref[K], 0, n)}
	b.fs = make([]*flight.Flight[K, record[V]], 0, n)
	b.stale = make([]*record[V], 0, n)
	b.admit = make([]bool, 0, n)
	return b
}

func (b *batchRun[K, V]) add(r ref[K], f *flight.Flight[K, record[V]], stale *record[V], admitted bool) {
	b.refs, b.fs = append(b.refs, r), append(b.fs, f)
	b.stale, b.admit = append(b.stale, stale), append(b.admit, admitted)
}

// runBatch calls the batch load function once for b's keys, publishes each key's record and persists
// them before the flights are forgotten. A batch takes tickets for its keys when the store fences
// writes (one each: the store has no batched ticket), but no fleet leases: batch loads coalesce per
// process.
func (e *engine[K, V]) runBatch(b *batchRun[K, V]) {
	ctx, done := e.loadCtx(b.base, b.fs...)
	defer done()
	co := e.defaultCall()
	var leads []storecall.Lead // nil: no tickets, every key's Lead is the zero one
	if e.fenced != nil && !b.storeFailed {
		leads = make([]storecall.Lead, len(b.refs))
		for i := range b.refs {
			var ok bool
			if leads[i], ok = e.calls.Ticket(ctx, e.fenced, e.storeKey(&b.refs[i]).s, e.ticketTTL()); !ok {
				break // one store timeout at most: the keys left take no ticket and are not written
			}
		}
	}
	ks := make([]K, len(b.refs))
	for i := range b.refs {
		ks[i] = b.refs[i].k
	}
	e.flights.RunMany(b.fs, func() ([]record[V], func()) {
		start := time.Now()
		e.stats.running.Add(1) // until ran
		finished := false
		defer func() {
			if !finished {
				e.stats.ran(time.Since(start), 0, false)
			}
		}()
		e.stats.batchLoads.Add(1)
		m, err := e.batch(ctx, ks)
		d := time.Since(start)
		finished = true
		e.stats.ran(d, statusOf(err), true)
		recs := make([]record[V], len(ks))
		ttls := make([]time.Duration, len(ks))
		want := make([]bool, len(ks)) // the key has something to persist (never a stale-if-error one)
		some := false
		for i, k := range ks {
			var v V
			kerr := err
			if kerr == nil {
				var ok bool
				if v, ok = m[k]; !ok {
					kerr = ErrNotFound
				}
			}
			rec, ttl := e.newRecord(v, kerr, nil, co, d)
			if kerr != nil && b.stale[i] != nil {
				recs[i] = *b.stale[i] // stale-if-error
				continue
			}
			recs[i], ttls[i] = rec, ttl
			want[i] = e.needed(ttl, leadOf(leads, i), b.admit[i])
			some = some || want[i]
		}
		if !some {
			return recs, nil
		}
		// One closure persists the batch, reading each key's record where it was published from.
		return recs, func() {
			for i := range ks {
				if want[i] {
					e.persist(b.fs[i], &b.refs[i], &recs[i], ttls[i], leadOf(leads, i), b.admit[i])
				}
			}
		}
	})
}

// leadOf returns the i-th lead of a batch, or the zero one when the batch took none.
func leadOf(leads []storecall.Lead, i int) storecall.Lead {
	if leads == nil {
		return storecall.Lead{}
	}
	return leads[i]
}

// refreshBuffer collects background refreshes of a [Loader] into batches (see
// [WithRefreshBuffering]): a batch is loaded once it holds size keys or wait has passed since its first
// key, whichever is first.
type refreshBuffer[K comparable, V any] struct {
	e    *engine[K, V]
	size int
	wait time.Duration

	mu    sync.Mutex
	batch *batchRun[K, V] // guarded by mu; nil when empty
	timer *time.Timer     // guarded by mu; armed while batch is not empty
}

// add queues r's refresh; f is its soft flight, already acquired.
func (b *refreshBuffer[K, V]) add(base context.Context, r ref[K], f *flight.Flight[K, record[V]]) {
	b.mu.Lock()
	if b.batch == nil {
		b.batch = &batchRun[K, V]{base: base}
		b.timer = time.AfterFunc(b.wait, b.flush)
	}
	b.batch.add(r, f, nil, true)
	full := len(b.batch.refs) >= b.size
	b.mu.Unlock()
	if full {
		b.flush()
	}
}

// flush starts the load of the batch collected so far, if any.
func (b *refreshBuffer[K, V]) flush() {
	b.mu.Lock()
	batch := b.batch
	b.batch = nil
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	if batch != nil {
		b.e.background.Add() // under mu, so that a wait after this flush sees it
	}
	b.mu.Unlock()
	if batch == nil {
		return
	}
	go func() {
		defer b.e.background.Done()
		defer b.e.recoverBackground()
		b.e.runBatch(batch)
	}()
}
