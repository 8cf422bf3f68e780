package stampede

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
)

// PanicError describes a run that panicked with a value other than http.ErrAbortHandler, for the
// requests that waited on it. The request that ran the handler panics with the original value; its
// message leaves the stack out, so that a panic is logged with its stack once, by whoever recovers the
// leading request.
type PanicError struct {
	// Value is what the handler panicked with.
	Value any
	// Stack is the stack of the goroutine that panicked, as debug.Stack printed it.
	Stack []byte
}

// Error implements error.
func (p *PanicError) Error() string {
	return fmt.Sprintf("stampede: coalesced handler panicked: %v", p.Value)
}

// Unwrap returns the panic value when it is an error.
func (p *PanicError) Unwrap() error {
	err, _ := p.Value.(error)
	return err
}

// errGoexit is what waiters see when the run called runtime.Goexit: they run the handler themselves.
var errGoexit = errors.New("stampede: coalesced handler called runtime.Goexit")

// errComputeTimeout is what waiters see when the run outlived the compute timeout: they stop waiting
// for it (and get a stale entry, or run the handler themselves).
var errComputeTimeout = errors.New("stampede: run passed the compute timeout")

// flight is one run of a loader for one key, and what it produced.
type flight[V any] struct {
	key   string
	id    uint64
	shard uint8
	done  chan struct{} // closed once val and err are final
	once  sync.Once
	val   V
	err   error // nil, *PanicError, http.ErrAbortHandler or errGoexit
	// soft marks a background refresh: requests that find it in flight may still be served from the
	// store (stale-while-revalidate) instead of waiting for it.
	soft bool
	// invalidated is set when the key is purged or invalidated while the flight runs: its result is
	// still given to its waiters but not stored.
	invalidated atomic.Bool
	// lead is set by the function API's leading call before its load starts, nil for the middleware.
	lead *leadState
}

// publish makes v (or err) the flight's result and wakes every waiter. Only the first call counts, so
// a loader may publish early (a streaming handler releases its waiters at the first flush).
func (f *flight[V]) publish(v V, err error) {
	f.once.Do(func() {
		f.val, f.err = v, err
		close(f.done)
	})
}

// wait blocks until the flight has a result or ctx ends, whichever is first.
func (f *flight[V]) wait(ctx context.Context) (V, error) {
	select {
	case <-f.done:
		return f.val, f.err
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
}

// coalescer lets at most one loader per key run at a time in this process; callers that arrive while
// it runs wait for its result. Its state is sharded by key so unrelated keys do not contend.
//
// The protocol that gives zero duplicate loads (docs/behaviour.md §5.2): a caller reads epoch, looks in the store,
// and on a miss calls acquire with that epoch. A flight is forgotten only after its result was persisted,
// and forgetting bumps the epoch, so a caller whose store look-up may predate a persist is told to look
// again instead of starting a second load.
type coalescer[V any] struct {
	shards  [numShards]coalescerShard[V]
	persist sync.WaitGroup // background persist-then-forget goroutines
	pending atomic.Int64   // of those, how many are running
}

// maxPendingPersists caps the background persist goroutines: past it the leader persists on its own
// goroutine before returning, so a store slower than the miss rate slows the leaders down (backpressure)
// instead of piling up goroutines and encoded entries without bound.
const maxPendingPersists = 128

type coalescerShard[V any] struct {
	mu      sync.Mutex
	flights map[string]*flight[V] // guarded by mu
	n       atomic.Int32          // len(flights), read without mu to skip it when nothing is in flight
	epoch   atomic.Uint64         // bumped under mu each time a flight is forgotten
	// recent[e%recentLen] is the id of the key forgotten when the epoch went from e to e+1, so acquire
	// can tell whether the flights forgotten since a caller's look-up were for its key or for unrelated
	// ones. Allocated at the first forget, so idle shards cost nothing. Guarded by mu.
	recent *[recentLen]uint64
}

// epoch returns the shard's forget counter, to be passed to acquire.
func (c *coalescer[V]) epoch(shard uint8) uint64 { return c.shards[shard].epoch.Load() }

// lookup returns the flight in progress for k, or nil. It takes no lock when the shard is idle.
func (c *coalescer[V]) lookup(k key) *flight[V] {
	s := &c.shards[k.shard]
	if s.n.Load() == 0 {
		return nil
	}
	s.mu.Lock()
	f := s.flights[k.s]
	s.mu.Unlock()
	return f
}

// noEpoch, passed to acquire, says the caller read nothing from the store (there is none, or the breaker
// skipped it): there is no look-up that a finished flight could have made stale, so no retry.
const noEpoch = ^uint64(0)

// retryKind is why acquire asks its caller to look in the store again.
type retryKind uint8

const (
	noRetry      retryKind = iota
	retryKey               // a flight for this key (or one with the same 64-bit id) was forgotten since
	retryUnknown           // more flights were forgotten in the shard than it remembers: it cannot tell
)

// acquire returns the flight for k. leader is true when the caller created it and must call run.
// retry is set (and f nil) when a flight in the shard was forgotten since epoch was read, and it may
// have been k's: the caller's store look-up may have missed a value persisted meanwhile, so it must
// look again. retryKey says it was k's; retryUnknown that the shard cannot tell (the look-up took so
// long that more than recentLen flights finished), which says nothing about k's runs: a caller that
// keeps getting it should stop passing an epoch (lead or join) rather than give up on coalescing.
func (c *coalescer[V]) acquire(k key, epoch uint64) (f *flight[V], leader bool, retry retryKind) {
	s := &c.shards[k.shard]
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.flights[k.s]; f != nil {
		return f, false, noRetry
	}
	if now := s.epoch.Load(); epoch != noEpoch && now != epoch {
		if r := forgottenSince(s.recent, epoch, now, k.id); r != noRetry {
			return nil, false, r
		}
	}
	if s.flights == nil {
		s.flights = make(map[string]*flight[V])
	}
	f = &flight[V]{key: k.s, id: k.id, shard: k.shard, done: make(chan struct{})}
	s.flights[k.s] = f
	s.n.Add(1)
	return f, true, noRetry
}

// acquireSoft starts a soft flight for k unless any flight for k is in progress; leader is true when it
// started one. No epoch check: a background refresh of an entry that is still there needs none.
func (c *coalescer[V]) acquireSoft(k key) (f *flight[V], leader bool) {
	s := &c.shards[k.shard]
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.flights[k.s]; f != nil {
		return f, false
	}
	if s.flights == nil {
		s.flights = make(map[string]*flight[V])
	}
	f = &flight[V]{key: k.s, id: k.id, shard: k.shard, done: make(chan struct{}), soft: true}
	s.flights[k.s] = f
	s.n.Add(1)
	return f, true
}

// forget removes f, so the next caller for its key starts a new flight.
func (c *coalescer[V]) forget(f *flight[V]) {
	s := &c.shards[f.shard]
	s.mu.Lock()
	if s.flights[f.key] == f {
		delete(s.flights, f.key)
		s.n.Add(-1)
	}
	e := s.epoch.Load()
	if s.recent == nil {
		s.recent = new([recentLen]uint64)
	}
	s.recent[e%recentLen] = f.id
	s.epoch.Store(e + 1)
	s.mu.Unlock()
}

// recentLen is how many forgotten keys a shard remembers. A look-up that takes long enough for more
// flights than that to finish in its shard (a store round trip under heavy load) looks again to be safe;
// 256 covers about a second at 10,000 concurrent requests on two cores.
const recentLen = 256

// forgottenSince reports whether the key with id may have been forgotten between epochs from and to:
// retryKey when it was (or another key with the same 64-bit id, which only costs a look-up),
// retryUnknown when more flights were forgotten than recent remembers.
func forgottenSince(recent *[recentLen]uint64, from, to, id uint64) retryKind {
	if to-from > recentLen || recent == nil {
		return retryUnknown
	}
	for e := from; e < to; e++ {
		if recent[e%recentLen] == id {
			return retryKey
		}
	}
	return noRetry
}

// run calls load on the caller's goroutine as f's leader and publishes the value it returns (load may
// have published it earlier itself: a streaming handler's waiters are released at its header). Then
// persist, the work load returned (nil when none), says what must be done before f may be forgotten: it
// runs on a goroutine of its own, so the leader's response is not delayed by a store write, and only
// after it returns is f forgotten. Requests that arrive meanwhile join f and get its value at once
// instead of loading again.
//
// A panic in load is published to the waiters and re-raised on the caller's goroutine with the same value;
// a runtime.Goexit in load is published as errGoexit. In both cases f is forgotten at once and nothing is
// persisted. The double defer tells the two apart, as x/sync/singleflight does.
func (c *coalescer[V]) run(f *flight[V], load func() (V, func())) V {
	var v V
	var work func()
	normalReturn, recovered := false, false
	defer func() {
		if !normalReturn && !recovered { // load called runtime.Goexit
			f.publish(v, errGoexit)
			c.forget(f)
		}
	}()
	func() {
		defer func() {
			if normalReturn {
				return
			}
			if r := recover(); r != nil {
				recovered = true
				f.publish(v, panicError(r))
				c.forget(f)
				panic(r)
			}
		}()
		v, work = load()
		normalReturn = true
	}()

	f.publish(v, nil)
	if work == nil {
		c.forget(f)
		return v
	}
	if c.pending.Add(1) > maxPendingPersists {
		c.pending.Add(-1)
		defer c.forget(f)
		work()
		return v
	}
	c.persist.Add(1)
	go func() {
		defer c.persist.Done()
		defer c.pending.Add(-1)
		defer c.forget(f)
		work()
	}()
	return v
}

// runMany is run for a batch of flights whose values one call produces: load, on the caller's
// goroutine, returns the values of fs in order and the work that persists all of them. Each flight is
// published its value; the work runs in the background and only then are the flights forgotten, as in
// run. A panic or runtime.Goexit in load is published to every flight of the batch (the panic re-raised
// on the caller's goroutine), and nothing is persisted.
func (c *coalescer[V]) runMany(fs []*flight[V], load func() ([]V, func())) {
	var vs []V
	var work func()
	var zero V
	forgetAll := func() {
		for _, f := range fs {
			c.forget(f)
		}
	}
	normalReturn, recovered := false, false
	defer func() {
		if !normalReturn && !recovered { // load called runtime.Goexit
			for _, f := range fs {
				f.publish(zero, errGoexit)
			}
			forgetAll()
		}
	}()
	func() {
		defer func() {
			if normalReturn {
				return
			}
			if r := recover(); r != nil {
				recovered = true
				err := panicError(r)
				for _, f := range fs {
					f.publish(zero, err)
				}
				forgetAll()
				panic(r)
			}
		}()
		vs, work = load()
		normalReturn = true
	}()

	for i, f := range fs {
		f.publish(vs[i], nil)
	}
	if work == nil {
		forgetAll()
		return
	}
	if c.pending.Add(1) > maxPendingPersists {
		c.pending.Add(-1)
		defer forgetAll()
		work()
		return
	}
	c.persist.Add(1)
	go func() {
		defer c.persist.Done()
		defer c.pending.Add(-1)
		defer forgetAll()
		work()
	}()
}

// detach removes f from the flights in progress without waiting for it, so that requests arriving from
// now on do not join it (its run passed the compute timeout). It bumps the epoch like forget, which only
// makes concurrent look-ups look again.
func (c *coalescer[V]) detach(f *flight[V]) { c.forget(f) }

// panicError is what a waiter of a run that panicked with p is told: http.ErrAbortHandler itself, or a
// *PanicError carrying p and the stack.
func panicError(p any) error {
	if p == http.ErrAbortHandler { //nolint:errorlint // net/http compares with ==
		return http.ErrAbortHandler
	}
	return &PanicError{Value: p, Stack: debug.Stack()}
}

// wait blocks until every background persist has finished; for tests and graceful shutdown.
func (c *coalescer[V]) wait() { c.persist.Wait() }
