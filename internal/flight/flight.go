// Package flight is the life of a key in one process, shared by the middleware and the function API:
// at most one flight (a handler run, a load) per key in progress, the callers that wait for it, the
// epochs that give zero duplicate loads, and the invalidation protocol that keeps a flight started
// before an invalidation from being joined, or stored, after the invalidation returned
// (docs/behaviour.md §5.2, §11).
//
// It knows nothing of HTTP, stores or values: a flight's result is a V, and storing it is work the
// front-end hands to [Group.Run], which calls [Group.Write] for each store write.
//
// The protocol of a key, in order:
//
//  1. A caller reads the key's [Group.Epoch], looks in the store, and on a miss calls [Group.Acquire]
//     with that epoch. It leads a new flight, joins the one in progress, or is told to look again when a
//     flight of its key was forgotten since its epoch (its look-up may predate that flight's write).
//  2. The leader runs the flight ([Group.Run]): the value is published to the waiters, then the
//     flight's persist work runs, and only then is the flight forgotten, so a caller arriving meanwhile
//     joins it instead of loading again.
//  3. Every store write of a flight goes through [Group.Write], which refuses a flight that an
//     invalidation reached, and makes an invalidation that arrives while the write is on its way wait
//     for it to return before it deletes anything. The writes of one key are made one at a time, in the
//     order their flights started: a flight's write that lands reaches every older flight of its key
//     as an invalidation does, so an older value never overwrites a newer one.
//  4. An invalidation ([Group.Invalidate], [Group.InvalidateLabel], [Group.InvalidateFunc]) marks every
//     live flight of its key (detached or persisting ones too), takes them out of the set callers may
//     join, and waits for their writes in progress. Once it returns, no caller joins a flight that
//     started before it, and no such flight's write starts.
package flight

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
)

// NumShards is how many independent locks the flights of a Group are spread over. A key's shard is
// the low bits of its hash.
const NumShards = 64

// ShardOf returns the shard of a key whose hash is hash.
func ShardOf(hash uint64) uint8 { return uint8(hash % NumShards) }

// ErrGoexit is the error of a flight whose leader called runtime.Goexit: its waiters run on their own.
var ErrGoexit = errors.New("stampede: coalesced run called runtime.Goexit")

// ErrExpired is the error of a flight that passed its compute timeout before it had a result: its
// waiters stop waiting (see [Group.Expire]).
var ErrExpired = errors.New("stampede: run passed the compute timeout")

// Panic is the error of a flight whose leader panicked with a value other than http.ErrAbortHandler.
// Front-ends turn it into their public error type at their boundary.
type Panic struct {
	Value any
	Stack []byte
}

func (p *Panic) Error() string { return fmt.Sprintf("stampede: coalesced run panicked: %v", p.Value) }

// PanicError returns what the waiters of a flight whose leader panicked with p are told:
// http.ErrAbortHandler itself (net/http and recoverers compare it with ==), or a *Panic with the stack.
func PanicError(p any) error {
	if p == http.ErrAbortHandler { //nolint:errorlint // net/http compares with ==
		return http.ErrAbortHandler
	}
	return &Panic{Value: p, Stack: debug.Stack()}
}

// Flight is one run of a loader for one key, and what it produced.
type Flight[K comparable, V any] struct {
	key   K
	fence K      // the key an invalidation of which reaches this flight (a varying response's URL key)
	hash  uint64 // the key's hash: its shard, and its identity in the shard's record of forgotten keys
	alias string // the store key, when the front-end's keys are not strings (see InvalidateFunc)
	soft  bool   // a background refresh: a caller may be served from the store instead of joining
	seq   uint64 // when it started, in the group's order of starts

	done chan struct{} // closed once val and err are final
	once sync.Once
	val  V
	err  error

	// Lead is the leading call's state, set by the front-end before the flight's run starts (the
	// function API's); nil when the front-end needs none.
	Lead *Lead

	// Guarded by the shard's mu.
	joinable    bool            // in the shard's map: callers may join it
	invalidated bool            // an invalidation reached it: none of its writes may start
	ended       bool            // forgotten: its persist work is over
	writing     bool            // one of its writes is on its way
	written     chan struct{}   // made by the first who waits for that write (see waitLocked); closed when it returns
	blockers    []chan struct{} // the invalidations that reached it, closed once each is done
	supersedes  chan struct{}   // Start's: closed when it ends, releasing the writes it refused
	labelled    bool            // labels are known
	labels      []string        // a varying response's tags, once its header is decided
	pending     []pendingLabel  // labels purged while they were not known yet
	prev, next  *Flight[K, V]   // the shard's list of live flights
	fprev       *Flight[K, V]   // the shard's list of the live flights of its fence (see shard.byFence)
	fnext       *Flight[K, V]
}

// Key returns the flight's key.
func (f *Flight[K, V]) Key() K { return f.key }

// Fence returns the key whose invalidation reaches the flight.
func (f *Flight[K, V]) Fence() K { return f.fence }

// Hash returns the hash the flight's key was acquired with.
func (f *Flight[K, V]) Hash() uint64 { return f.hash }

// Soft reports whether the flight is a background refresh.
func (f *Flight[K, V]) Soft() bool { return f.soft }

// Alias returns the store key the flight was acquired with, or "".
func (f *Flight[K, V]) Alias() string { return f.alias }

// Publish makes v (or err) the flight's result and wakes every waiter. Only the first call counts, so
// a loader may publish early (a streaming handler releases its waiters at its header).
func (f *Flight[K, V]) Publish(v V, err error) {
	f.once.Do(func() {
		f.val, f.err = v, err
		close(f.done)
	})
}

// Done returns a channel closed once the flight has a result.
func (f *Flight[K, V]) Done() <-chan struct{} { return f.done }

// Wait blocks until the flight has a result or ctx ends, whichever is first.
func (f *Flight[K, V]) Wait(ctx context.Context) (V, error) {
	if ctx.Done() == nil { // a context that never ends: a plain receive is cheaper than a select
		<-f.done
		return f.val, f.err
	}
	select {
	case <-f.done:
		return f.val, f.err
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
}

// Lead is what a leading call and its load's goroutine share (the function API runs a load on a
// goroutine of its own), so that a panic is raised on the leading call while it waits, and logged when
// nobody was there to see it.
type Lead struct {
	mu         sync.Mutex
	left       bool          // the leading call stopped waiting; guarded by mu
	done       chan struct{} // made by Left, only when a panic needs it (most loads never ask); guarded by mu
	repanicked atomic.Bool
}

// NewLead returns the state of a leading call that is waiting.
func NewLead() *Lead { return &Lead{} }

// Leave says the leading call stopped waiting.
func (l *Lead) Leave() {
	l.mu.Lock()
	if !l.left {
		l.left = true
		if l.done != nil {
			close(l.done)
		}
	}
	l.mu.Unlock()
}

// Left returns a channel closed once the leading call stopped waiting.
func (l *Lead) Left() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done == nil {
		l.done = make(chan struct{})
		if l.left {
			close(l.done)
		}
	}
	return l.done
}

// Repanicked records that the leading call raised the load's panic itself.
func (l *Lead) Repanicked() { l.repanicked.Store(true) }

// Raised reports whether the leading call raised the load's panic itself.
func (l *Lead) Raised() bool { return l.repanicked.Load() }

// Group lets at most one flight per key run at a time in this process; callers that arrive while it runs
// wait for its result. Its state is sharded by key hash, so unrelated keys do not contend. The zero Group
// is ready to use.
type Group[K comparable, V any] struct {
	// PersistInline makes Run and RunMany persist on the caller's goroutine, after publishing, instead
	// of on a goroutine of their own: for a front-end whose runs already have a goroutine of their own
	// that nobody waits on once the value is published (the function API's loads). Set before use.
	PersistInline bool

	shards  [NumShards]shard[K, V]
	persist Tracker       // background persist-then-forget goroutines
	pending atomic.Int64  // of those, how many are running
	live    atomic.Int64  // flights started and not yet forgotten
	seq     atomic.Uint64 // the order in which flights start
}

type shard[K comparable, V any] struct {
	mu      sync.Mutex
	flights map[K]*Flight[K, V] // the joinable flights; guarded by mu
	n       atomic.Int32        // len(flights), read without mu to skip the shard when nothing is in flight
	epoch   atomic.Uint64       // bumped under mu each time a flight stops being joinable
	// recent[e%recentLen] says what happened when the epoch went from e to e+1: a flight of a key (by
	// its hash) stopped being joinable, or a fence was invalidated, or every fence was (an invalidation
	// by announcement or by label). So Acquire can tell whether what happened since a caller's look-up
	// concerns its key or unrelated ones. Allocated at the first event, so idle shards cost nothing.
	// Guarded by mu.
	recent *[recentLen]stamp[K]
	head   *Flight[K, V] // the live flights (joinable, detached or persisting); guarded by mu
	// byFence holds, for each fence with live flights, the first of them; the others follow through
	// fnext. A write and an invalidation visit the flights of their fence alone, so their cost does
	// not grow with the flights of other keys in progress (10,000 in a miss storm). Guarded by mu.
	byFence map[K]*Flight[K, V]
	// active are the invalidations in progress in the shard: a flight that starts while one of its
	// fence (or of a label) is in progress is reached by it as if it had been there when it began,
	// since what the flight's caller read may predate the deletion still to come. Guarded by mu.
	active []activeInvalidation[K]
}

// maxPendingPersists caps the background persist goroutines: past it the leader persists on its own
// goroutine before returning, so a store slower than the miss rate slows the leaders down (backpressure)
// instead of piling up goroutines and encoded entries without bound.
const maxPendingPersists = 128

// recentLen is how many forgotten keys a shard remembers. A look-up that takes long enough for more
// flights than that to finish in its shard (a store round trip under heavy load) looks again to be safe;
// 256 covers about a second at 10,000 concurrent requests on two cores.
const recentLen = 256

// activeInvalidation is an invalidation in progress: of a fence, or of a label.
type activeInvalidation[K comparable] struct {
	fence   K
	label   string
	byLabel bool
	inv     chan struct{}
}

// stamp is one event of a shard's epoch (see shard.recent).
type stamp[K comparable] struct {
	kind  stampKind
	hash  uint64 // stampForgotten: the key's hash
	fence K      // stampFence: the fence invalidated
}

type stampKind uint8

const (
	stampForgotten stampKind = iota // a flight stopped being joinable
	stampFence                      // a fence was invalidated
	stampAll                        // every fence may have been
)

// noteLocked records an event in the shard's epoch. sh.mu is held.
func (sh *shard[K, V]) noteLocked(st stamp[K]) {
	e := sh.epoch.Load()
	if sh.recent == nil {
		sh.recent = new([recentLen]stamp[K])
	}
	sh.recent[e%recentLen] = st
	sh.epoch.Store(e + 1)
}

func (g *Group[K, V]) shard(hash uint64) *shard[K, V] { return &g.shards[ShardOf(hash)] }

// Epoch returns the forget counter of hash's shard, to be passed to Acquire.
func (g *Group[K, V]) Epoch(hash uint64) uint64 { return g.shard(hash).epoch.Load() }

// Busy reports whether any flight of hash's shard may be joined; one atomic load.
func (g *Group[K, V]) Busy(hash uint64) bool { return g.shard(hash).n.Load() != 0 }

// Live returns how many flights are in progress (running or persisting).
func (g *Group[K, V]) Live() int64 { return g.live.Load() }

// Lookup returns the joinable flight of k, or nil. It takes no lock when the shard is idle.
func (g *Group[K, V]) Lookup(k K, hash uint64) *Flight[K, V] {
	s := g.shard(hash)
	if s.n.Load() == 0 {
		return nil
	}
	s.mu.Lock()
	f := s.flights[k]
	s.mu.Unlock()
	return f
}

// NoEpoch, passed to Acquire, says the caller read nothing from the store (there is none, or the
// breaker skipped it): there is no look-up that a finished flight could have made stale, so no retry.
const NoEpoch = ^uint64(0)

// Retry is why Acquire asks its caller to look in the store again.
type Retry uint8

const (
	NoRetry      Retry = iota
	RetryKey           // a flight of this key (or one with the same hash) stopped being joinable since
	RetryUnknown       // more flights stopped in the shard than it remembers: it cannot tell
)

// Spec describes the flight Acquire starts: its key, the key whose invalidation reaches it (the zero
// value means key itself), its hash, and for front-ends whose keys are not strings, the store key.
type Spec[K comparable] struct {
	Key   K
	Fence K
	Hash  uint64
	Alias string
	// HasFence says Fence is set (K's zero value may be a real key).
	HasFence bool
}

// Acquire returns the flight of s.Key. leader is true when the caller created it and must run it.
// retry is set (and f nil) when a flight in the shard stopped being joinable since epoch was read, and
// it may have been this key's: the caller's store look-up may have missed a value persisted meanwhile,
// so it must look again. RetryKey says it was this key's; RetryUnknown that the shard cannot tell (the
// look-up took so long that more than recentLen flights finished), which says nothing about this key: a
// caller that keeps getting it should stop passing an epoch (lead or join) rather than give up.
func (g *Group[K, V]) Acquire(s Spec[K], epoch uint64) (f *Flight[K, V], leader bool, retry Retry) {
	sh := g.shard(s.Hash)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if f := sh.flights[s.Key]; f != nil {
		return f, false, NoRetry
	}
	if now := sh.epoch.Load(); epoch != NoEpoch && now != epoch {
		if r := changedSince(sh.recent, epoch, now, s.Hash, fenceOf(s)); r != NoRetry {
			return nil, false, r
		}
	}
	return g.startLocked(sh, s, false, true), true, NoRetry
}

// AcquireSoft starts a soft flight (a background refresh) for s.Key unless a flight of it is joinable;
// leader is true when it started one. No epoch check: a refresh of an entry that is still there needs
// none.
func (g *Group[K, V]) AcquireSoft(s Spec[K]) (f *Flight[K, V], leader bool) {
	sh := g.shard(s.Hash)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if f := sh.flights[s.Key]; f != nil {
		return f, false
	}
	return g.startLocked(sh, s, true, true), true
}

// Start starts the flight of a call that supersedes every flight of its key in progress (a Set, a
// Refresh): those are reached as by an invalidation (no longer joined; their writes refused), and the
// new flight becomes the key's joinable flight at once, so that a caller arriving from now on waits for
// its value rather than reading what it replaces. The caller runs it (Run) or publishes its value and
// ends it (End); the writes it refused return once it has ended. Start waits for the reached flights'
// writes in progress first.
func (g *Group[K, V]) Start(s Spec[K]) *Flight[K, V] {
	sh := g.shard(s.Hash)
	inv := make(chan struct{})
	sh.mu.Lock()
	// A flight whose write is on its way keeps its place until the write lands: its value is the key's
	// current one until then (a caller may have been given it), and callers go on joining it.
	for busy := sh.writingLocked(fenceOf(s)); busy != nil; busy = sh.writingLocked(fenceOf(s)) {
		sh.mu.Unlock()
		<-busy
		sh.mu.Lock()
	}
	// Lookup reads the shard's count without the lock: keep it above zero while the key's joinable
	// flight is swapped for the new one, or a caller finds none in between and reads the store, which
	// may still hold what the old flight's value (published, its write on the way) replaced.
	sh.n.Add(1)
	if old := sh.flights[s.Key]; old != nil {
		sh.detachLocked(old) // the key's joinable flight is about to be this one
	}
	marked, _ := sh.invalidateLocked(fenceOf(s), inv, nil, nil) // no write is in progress: waited above
	sh.noteLocked(stamp[K]{kind: stampFence, fence: fenceOf(s)})
	for _, old := range marked {
		sh.detachLocked(old) // the new flight is the key's current one from now on
	}
	f := g.startLocked(sh, s, false, true)
	sh.n.Add(-1)
	f.supersedes = inv
	sh.mu.Unlock()
	return f
}

// ErrSuperseded is the error of a flight whose value was superseded before it was kept (a Set that an
// invalidation overtook): its waiters look again.
var ErrSuperseded = errors.New("stampede: superseded")

func fenceOf[K comparable](s Spec[K]) K {
	if s.HasFence {
		return s.Fence
	}
	return s.Key
}

// startLocked makes a live flight for s, joinable or not. sh.mu is held.
func (g *Group[K, V]) startLocked(sh *shard[K, V], s Spec[K], soft, joinable bool) *Flight[K, V] {
	f := &Flight[K, V]{key: s.Key, fence: fenceOf(s), hash: s.Hash, alias: s.Alias, soft: soft, done: make(chan struct{}),
		seq: g.seq.Add(1)}
	if joinable {
		if sh.flights == nil {
			sh.flights = make(map[K]*Flight[K, V])
		}
		sh.flights[s.Key] = f
		sh.n.Add(1)
		f.joinable = true
	}
	for _, a := range sh.active {
		switch {
		case a.byLabel:
			f.pending = append(f.pending, pendingLabel{label: a.label, inv: a.inv})
		case a.fence == f.fence:
			f.invalidated = true
			f.blockers = append(f.blockers, a.inv)
		}
	}
	f.next = sh.head
	if sh.head != nil {
		sh.head.prev = f
	}
	sh.head = f
	if sh.byFence == nil {
		sh.byFence = make(map[K]*Flight[K, V])
	}
	if first := sh.byFence[f.fence]; first != nil {
		f.fnext, first.fprev = first, f
	}
	sh.byFence[f.fence] = f
	g.live.Add(1)
	return f
}

// detachLocked makes f unjoinable, recording in the shard's epoch that a flight of its key stopped
// being joinable (a caller whose look-up predates this looks again). sh.mu is held.
func (sh *shard[K, V]) detachLocked(f *Flight[K, V]) {
	if !f.joinable {
		return
	}
	f.joinable = false
	if sh.flights[f.key] == f {
		delete(sh.flights, f.key)
		sh.n.Add(-1)
	}
	sh.noteLocked(stamp[K]{kind: stampForgotten, hash: f.hash})
}

// End forgets f: it is no longer joinable nor live, and the next caller for its key starts a new
// flight. Ending an ended flight does nothing.
func (g *Group[K, V]) End(f *Flight[K, V]) {
	sh := g.shard(f.hash)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if f.ended {
		return
	}
	f.ended = true
	if f.supersedes != nil {
		close(f.supersedes)
	}
	sh.detachLocked(f)
	if f.prev != nil {
		f.prev.next = f.next
	} else {
		sh.head = f.next
	}
	if f.next != nil {
		f.next.prev = f.prev
	}
	f.prev, f.next = nil, nil
	switch {
	case f.fprev != nil:
		f.fprev.fnext = f.fnext
	case f.fnext != nil:
		sh.byFence[f.fence] = f.fnext
	default:
		delete(sh.byFence, f.fence)
	}
	if f.fnext != nil {
		f.fnext.fprev = f.fprev
	}
	f.fprev, f.fnext = nil, nil
	g.live.Add(-1)
}

// Detach makes f unjoinable without ending it, so that callers arriving from now on start a flight of
// their own (its run passed the compute timeout). Its writes are still allowed.
func (g *Group[K, V]) Detach(f *Flight[K, V]) {
	sh := g.shard(f.hash)
	sh.mu.Lock()
	sh.detachLocked(f)
	sh.mu.Unlock()
}

// Expire is what the compute timeout does to a flight that has no result yet: it is detached, and its
// waiters are released with ErrExpired. The run goes on; what it writes late is still allowed.
func (g *Group[K, V]) Expire(f *Flight[K, V]) {
	g.Detach(f)
	var zero V
	f.Publish(zero, ErrExpired)
}

// changedSince reports whether something that concerns the key with hash and fence happened between
// epochs from and to: RetryKey when a flight of it (or of another key with the same hash, which only
// costs a look-up) stopped being joinable or its fence was invalidated (a look-up made before that may
// have read what the invalidation removed: a varying response's index, say), RetryUnknown when more
// happened than recent remembers.
func changedSince[K comparable](recent *[recentLen]stamp[K], from, to, hash uint64, fence K) Retry {
	if to-from > recentLen || recent == nil {
		return RetryUnknown
	}
	for e := from; e < to; e++ {
		st := &recent[e%recentLen]
		switch {
		case st.kind == stampAll,
			st.kind == stampForgotten && st.hash == hash,
			st.kind == stampFence && st.fence == fence:
			return RetryKey
		}
	}
	return NoRetry
}

// Invalidate reaches every live flight whose fence is fence (in the shard of hash): none of their writes
// starts from now on, and once Invalidate returns, none of them is joined. It waits for their writes in
// progress to return, then runs apply (the deletion in the store), so that the deletion cannot be
// overtaken by one of them; only then are they detached, so that until the deletion has taken effect a
// caller gets their value (the key's current one: callers may have been given it already) rather than
// what the store held before them. A write it refused returns only once it is done.
func (g *Group[K, V]) Invalidate(fence K, hash uint64, apply func()) {
	sh := g.shard(hash)
	inv := make(chan struct{})
	sh.mu.Lock()
	marked, wait := sh.invalidateLocked(fence, inv, nil, nil)
	sh.active = append(sh.active, activeInvalidation[K]{fence: fence, inv: inv})
	sh.mu.Unlock()
	g.finish(marked, wait, inv, apply, stamp[K]{kind: stampFence, fence: fence}, sh)
}

// finish waits for the writes in progress, applies an invalidation, detaches the flights it marked and
// says it is done.
// The shards in active are those the invalidation registered itself in as in progress (see
// shard.active); it leaves them once it is done, recording st in their epochs then: a caller whose
// look-up may have read what the invalidation removed, and who comes to Acquire after it is done, looks
// again (a caller who comes while it is in progress is reached by it through active).
func (g *Group[K, V]) finish(marked []*Flight[K, V], wait []chan struct{}, inv chan struct{}, apply func(), st stamp[K], active ...*shard[K, V]) {
	defer close(inv)
	for _, c := range wait {
		<-c
	}
	if apply != nil {
		apply()
	}
	for _, f := range marked {
		g.Detach(f)
	}
	for _, sh := range active {
		sh.mu.Lock()
		sh.active = slices.DeleteFunc(sh.active, func(a activeInvalidation[K]) bool { return a.inv == inv })
		sh.noteLocked(st)
		sh.mu.Unlock()
	}
}

// invalidateLocked marks the live flights of fence, appending them to marked and their writes in
// progress to wait. sh.mu is held.
func (sh *shard[K, V]) invalidateLocked(fence K, inv chan struct{}, marked []*Flight[K, V], wait []chan struct{}) ([]*Flight[K, V], []chan struct{}) {
	for f := sh.byFence[fence]; f != nil; f = f.fnext {
		marked, wait = sh.markLocked(f, inv, marked, wait)
	}
	return marked, wait
}

// markLocked invalidates f on behalf of the invalidation inv: its writes are refused (and return once
// inv is closed), and it is appended to marked, to be detached once the invalidation has taken effect.
// sh.mu is held.
func (sh *shard[K, V]) markLocked(f *Flight[K, V], inv chan struct{}, marked []*Flight[K, V], wait []chan struct{}) ([]*Flight[K, V], []chan struct{}) {
	f.invalidated = true
	f.blockers = append(f.blockers, inv)
	if f.writing {
		wait = append(wait, f.waitLocked())
	}
	return append(marked, f), wait
}

// InvalidateFunc is Invalidate for every live flight, in any shard, that match reports (for an
// invalidation known by a store key that the flights' keys do not show, such as an announcement from
// another replica). Unlike Invalidate it does not send back the callers who read before it: it is for
// front-ends whose flights compute their values afresh, whatever their callers read.
func (g *Group[K, V]) InvalidateFunc(match func(f *Flight[K, V]) bool, apply func()) {
	inv := make(chan struct{})
	var marked []*Flight[K, V]
	var wait []chan struct{}
	for i := range g.shards {
		sh := &g.shards[i]
		sh.mu.Lock()
		for f := sh.head; f != nil; f = f.next {
			if match(f) {
				marked, wait = sh.markLocked(f, inv, marked, wait)
			}
		}
		sh.mu.Unlock()
	}
	g.finish(marked, wait, inv, apply, stamp[K]{}, nil...)
}

// all returns every shard.
func (g *Group[K, V]) all() []*shard[K, V] {
	all := make([]*shard[K, V], len(g.shards))
	for i := range g.shards {
		all[i] = &g.shards[i]
	}
	return all
}

// pendingLabel is a label purged while a flight's labels were not known, and that purge.
type pendingLabel struct {
	label string
	inv   chan struct{}
}

// InvalidateLabel reaches every live flight that carries label (a response's tag): as Invalidate for
// those whose labels are known; those whose labels are not known yet remember the label, so that their
// writes are refused if it turns out to be theirs (see Label), and are detached as well once apply (the
// purge in the store) has returned: nobody joins a flight that may carry the label after the purge.
func (g *Group[K, V]) InvalidateLabel(label string, apply func()) {
	inv := make(chan struct{})
	var marked []*Flight[K, V]
	var wait []chan struct{}
	for i := range g.shards {
		sh := &g.shards[i]
		sh.mu.Lock()
		for f := sh.head; f != nil; f = f.next {
			switch {
			case f.labelled && contains(f.labels, label):
				marked, wait = sh.markLocked(f, inv, marked, wait)
			case !f.labelled:
				f.pending = append(f.pending, pendingLabel{label: label, inv: inv})
				marked = append(marked, f)
			}
		}
		sh.active = append(sh.active, activeInvalidation[K]{label: label, byLabel: true, inv: inv})
		sh.mu.Unlock()
	}
	g.finish(marked, wait, inv, apply, stamp[K]{kind: stampAll}, g.all()...)
}

// Label records f's labels once they are known, and reports whether f is still allowed to write: false
// when one of them was purged while they were not known.
func (g *Group[K, V]) Label(f *Flight[K, V], labels []string) bool {
	sh := g.shard(f.hash)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	f.labelled, f.labels = true, labels
	for _, p := range f.pending {
		if contains(labels, p.label) {
			f.invalidated = true
			f.blockers = append(f.blockers, p.inv)
		}
	}
	f.pending = nil
	return !f.invalidated
}

// Invalidated reports whether an invalidation reached f.
func (g *Group[K, V]) Invalidated(f *Flight[K, V]) bool {
	sh := g.shard(f.hash)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return f.invalidated
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Write runs write, one store write of f, unless an invalidation reached f, and reports what write
// returned (false when it did not run). Writes of one key (of one fence) are made one at a time: a write
// waits for the one in progress. An invalidation that arrives while write runs waits for it to return.
// A write that stores (write returned true) reaches every older live flight of its key as an
// invalidation does: their values are older than the one just stored. A refused write returns once the
// invalidations that refused it are done, so that a caller who returns then (Set) never returns before
// the invalidation that superseded it took effect.
func (g *Group[K, V]) Write(f *Flight[K, V], write func() bool) bool {
	sh := g.shard(f.hash)
	sh.mu.Lock()
	for {
		if f.invalidated {
			blockers := f.blockers // invalidations in progress (newer writes add none)
			sh.mu.Unlock()
			for _, c := range blockers {
				<-c
			}
			return false
		}
		busy := sh.writingLocked(f.fence)
		if busy == nil {
			break
		}
		sh.mu.Unlock()
		<-busy
		sh.mu.Lock()
	}
	f.writing = true
	sh.mu.Unlock()
	stored := false
	defer func() {
		sh.mu.Lock()
		if stored {
			// The value just stored is newer than those of the key's older flights: they are neither
			// joined nor stored any more.
			for o := sh.byFence[f.fence]; o != nil; o = o.fnext {
				if o != f && o.seq < f.seq {
					o.invalidated = true
					sh.detachLocked(o)
				}
			}
		}
		f.writing = false
		if f.written != nil {
			close(f.written)
			f.written = nil
		}
		sh.mu.Unlock()
	}()
	stored = write()
	return stored
}

// waitLocked returns a channel closed once f's write in progress returns: most writes are waited for by
// nobody, so the channel is made only when someone does. f.writing is set; the shard's mu is held.
func (f *Flight[K, V]) waitLocked() chan struct{} {
	if f.written == nil {
		f.written = make(chan struct{})
	}
	return f.written
}

// writingLocked returns the channel of a write of fence in progress, or nil. sh.mu is held.
func (sh *shard[K, V]) writingLocked(fence K) chan struct{} {
	for o := sh.byFence[fence]; o != nil; o = o.fnext {
		if o.writing {
			return o.waitLocked()
		}
	}
	return nil
}

// Run calls load on the caller's goroutine as f's leader and publishes the value it returns (load may
// have published it earlier itself: a streaming handler's waiters are released at its header). Then
// persist, the work load returned (nil when none), runs on a goroutine of its own (on the caller's with
// PersistInline), so the leader's response is not delayed by a store write, and only after it returns
// is f forgotten. Callers that
// arrive meanwhile join f and get its value at once instead of loading again.
//
// A panic in load is published to the waiters and re-raised on the caller's goroutine with the same
// value; a runtime.Goexit in load is published as ErrGoexit. In both cases f is forgotten at once and
// nothing is persisted. The double defer tells the two apart, as x/sync/singleflight does.
func (g *Group[K, V]) Run(f *Flight[K, V], load func() (V, func())) V {
	var v V
	var work func()
	normalReturn, recovered := false, false
	defer func() {
		if !normalReturn && !recovered { // load called runtime.Goexit
			f.Publish(v, ErrGoexit)
			g.End(f)
		}
	}()
	func() {
		defer func() {
			if normalReturn {
				return
			}
			if r := recover(); r != nil {
				recovered = true
				f.Publish(v, PanicError(r))
				g.End(f)
				panic(r)
			}
		}()
		v, work = load()
		normalReturn = true
	}()

	f.Publish(v, nil)
	g.persistThenEnd(work, f)
	return v
}

// RunMany is Run for a batch of flights whose values one call produces: load, on the caller's
// goroutine, returns the values of fs in order and the work that persists all of them. Each flight is
// published its value; the work runs in the background and only then are the flights forgotten. A
// panic or runtime.Goexit in load is published to every flight of the batch (the panic re-raised on the
// caller's goroutine), and nothing is persisted.
func (g *Group[K, V]) RunMany(fs []*Flight[K, V], load func() ([]V, func())) {
	var vs []V
	var work func()
	var zero V
	normalReturn, recovered := false, false
	defer func() {
		if !normalReturn && !recovered { // load called runtime.Goexit
			for _, f := range fs {
				f.Publish(zero, ErrGoexit)
				g.End(f)
			}
		}
	}()
	func() {
		defer func() {
			if normalReturn {
				return
			}
			if r := recover(); r != nil {
				recovered = true
				err := PanicError(r)
				for _, f := range fs {
					f.Publish(zero, err)
					g.End(f)
				}
				panic(r)
			}
		}()
		vs, work = load()
		normalReturn = true
	}()

	for i, f := range fs {
		f.Publish(vs[i], nil)
	}
	g.persistThenEnd(work, fs...)
}

// persistThenEnd runs work, then ends fs: on a goroutine of its own while fewer than
// maxPendingPersists are running, on the caller's otherwise (backpressure).
func (g *Group[K, V]) persistThenEnd(work func(), fs ...*Flight[K, V]) {
	end := func() {
		for _, f := range fs {
			g.End(f)
		}
	}
	if work == nil {
		end()
		return
	}
	if g.PersistInline {
		defer end()
		work()
		return
	}
	if g.pending.Add(1) > maxPendingPersists {
		g.pending.Add(-1)
		defer end()
		work()
		return
	}
	g.persist.Add()
	go func() {
		defer g.persist.Done()
		defer g.pending.Add(-1)
		defer end()
		work()
	}()
}

// Wait blocks until every background persist started so far has finished; for tests and graceful
// shutdown.
func (g *Group[K, V]) Wait() { g.persist.Wait() }

// Tracker counts work in progress (goroutines of background loads, refreshes, persists) and waits for
// it. Unlike a sync.WaitGroup it may be added to while another goroutine waits: Wait returns once the
// count was zero at some moment after it was called. The zero Tracker is ready to use.
type Tracker struct {
	mu   sync.Mutex
	n    int
	zero chan struct{} // closed when n next reaches zero; nil while nobody waits
}

// Add counts one more piece of work.
func (t *Tracker) Add() {
	t.mu.Lock()
	t.n++
	t.mu.Unlock()
}

// Done counts one piece of work as finished.
func (t *Tracker) Done() {
	t.mu.Lock()
	t.n--
	if t.n == 0 && t.zero != nil {
		close(t.zero)
		t.zero = nil
	}
	t.mu.Unlock()
}

// Wait blocks until no work is counted.
func (t *Tracker) Wait() {
	t.mu.Lock()
	if t.n == 0 {
		t.mu.Unlock()
		return
	}
	if t.zero == nil {
		t.zero = make(chan struct{})
	}
	c := t.zero
	t.mu.Unlock()
	<-c
}
