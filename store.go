package stampede

import (
	"context"
	"time"
)

// Store persists encoded responses between requests. It is method-compatible with goware/cachestore2's
// Store[[]byte], so adapters written for that interface plug in unchanged.
//
// Values are opaque bytes in stampede's versioned entry format; a store must return them unchanged and
// must not modify a slice after handing it out (the middleware replays from it without copying).
// Get reports a missing key as (nil, false, nil). Every method must respect ctx: the middleware bounds
// each call with a deadline (see [WithStoreTimeout]), and an error or a timeout only ever counts as a
// miss (behaviour contract §7.1).
//
// A Store may offer more, each by a method set below; the middleware detects them when it is built
// ([New], [NewLoader], [NewStampede]), so a store needs no import of this package to offer them:
//
//   - [BatchStore]: many keys in one round trip (Loader.GetMany, the fleet's batched look-ups);
//   - [LeaseStore]: leases for one handler run per key across replicas ([WithFleetCoalescing]);
//   - [FencedStore]: writes fenced against invalidations from any replica;
//   - [TagStore]: a tag index shared by every replica ([Cache.PurgeTag]);
//   - [InvalidationStore], [TagInvalidationStore]: deletions and tag purges announced to every replica;
//   - [AnnotatedStore]: an annotation kept beside each value (in-process hits skip re-validation);
//   - [SelfBoundedStore]: the store bounds its own calls (no timer per call);
//   - [HoldingStore]: whether it still holds a key, for the in-process tag index;
//   - [SizedStore] and [EvictionCounter]: what it holds, for [Snapshot].Memory.
//
// Each backend of this module asserts at compile time (in its tests) that it still has the method set
// it is meant to offer, so a signature that drifts fails the build instead of silently turning a
// feature off.
type Store interface {
	// Get returns the value stored under key and whether it was found.
	Get(ctx context.Context, key string) ([]byte, bool, error)
	// SetEx stores value under key for ttl, which is always above zero.
	SetEx(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Delete removes key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

// ValueStore keeps Go values between calls, for the function API: [NewStampede] takes one, and a
// [Loader] may keep its values in one ([WithValues]). Its methods are those of goware/cachestore2's
// Store[V] that stampede calls, so any cachestore2 store (a Backend is a Store[any]) is a ValueStore,
// and so is backends/memstore's Values, which holds values in this process without encoding them.
//
// Get reports a missing key as (zero, false, nil). An error only ever counts as a miss.
type ValueStore[V any] interface {
	// Get returns the value stored under key and whether it was found.
	Get(ctx context.Context, key string) (V, bool, error)
	// SetEx stores value under key for ttl, which is always above zero.
	SetEx(ctx context.Context, key string, value V, ttl time.Duration) error
	// Delete removes key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

// BatchStore is a [Store] that reads many keys in one round trip (backends/redisstore: one MGET per
// cluster slot; backends/tieredstore over it). values[i] belongs to keys[i], nil when missing; err is
// for the whole call, which then counts as a miss for every key.
type BatchStore interface {
	BatchGet(ctx context.Context, keys []string) (values [][]byte, err error)
}

// ValueBatchStore is a [ValueStore] that reads many keys at once, as goware/cachestore2's Store[V]
// does: values[i] and found[i] belong to keys[i].
type ValueBatchStore[V any] interface {
	BatchGet(ctx context.Context, keys []string) (values []V, found []bool, err error)
}

// LeaseStore is what a [Store] offers for fleet coalescing ([WithFleetCoalescing]): a lease per key that
// one replica holds while it runs the handler, and a notice that wakes the other replicas when the
// holder is done. A LeaseStore is a [FencedStore] too: the lease's token is the holder's ticket, so only
// the holder may write the key, and an invalidation revokes the lease like any ticket.
// backends/redisstore implements it, and backends/tieredstore passes it on to its second tier.
//
// The outcome a holder announces is one of "stored" (the entry is in the store: read it), "pass" (the
// response may not be shared: every replica runs its own handler) and "miss" (nothing was stored: try
// the lease again); a store passes it through unchanged. An invalidation that revokes a lease announces
// "miss" to its waiters.
type LeaseStore interface {
	// TryLease takes key's lease for lease with a fresh token; held is false when another holds it.
	// The token is a ticket for [FencedStore.SetFenced] while the lease is held.
	TryLease(ctx context.Context, key string, lease time.Duration) (token string, held bool, err error)
	// Release gives up key's lease if token holds it and announces outcome to the waiting replicas.
	Release(ctx context.Context, key, token, outcome string) error
	// WaitRelease blocks until key's lease is released (returning the outcome announced) or gone, or
	// ctx ends.
	WaitRelease(ctx context.Context, key string) (outcome string, err error)
}

// FencedStore is a [Store] whose writes are fenced against the invalidations made through any replica
// sharing it, so that a value computed before an invalidation never lands after it (behaviour
// contract §11). backends/redisstore implements it (Lua scripts), backends/tieredstore passes it on to its second
// tier.
//
// The protocol, as the middleware and the function API use it:
//   - Before a flight computes a value for key (a handler run, a load), it takes a ticket with Ticket;
//     with fleet coalescing the lease token of [LeaseStore] is its ticket instead.
//   - It writes what it computed with SetFenced, which writes nothing once the ticket is no longer
//     valid: revoked, expired, or, for a lease token, no longer holding the lease.
//   - Invalidate deletes key and revokes every ticket and lease of key taken before it returns.
//   - A store that is also a [TagStore] fences by tag too: PurgeTag(tag) revokes the ticket of every
//     write that carries tag, whether the write recorded its tags before the purge or after it, as long
//     as its ticket was taken before the purge returned.
//
// Each check and the write it guards must be one atomic step (a script, a transaction), so that no
// Invalidate can fall between them, and an Invalidate must not return before its deletion is as durable
// as the store's writes (a Redis store with replicas waits for one to acknowledge it).
//
// Keys: key is the key a ticket is for; writeKey is key itself or a key that shares key's Redis Cluster
// hash tag (the first {...}), such as the variants of a varying response and their index. A ticket of
// key fences every write made with it, whatever its writeKey.
type FencedStore interface {
	// Ticket registers a writer of key and returns its ticket, valid for ttl unless revoked first.
	Ticket(ctx context.Context, key string, ttl time.Duration) (ticket string, err error)
	// SetFenced records writeKey under each of tags (as [TagStore.TagKeys] would, for ttl; tags is
	// empty for a store without a tag index), then stores value under writeKey for ttl unless ticket is
	// no longer valid for key or one of tags was purged after the ticket was taken. stored reports
	// whether it wrote. The ticket stays valid for further writes until it expires or is revoked.
	SetFenced(ctx context.Context, key, ticket, writeKey string, value []byte, ttl time.Duration, tags []string) (stored bool, err error)
	// Invalidate deletes key, revokes every ticket and lease of key, and announces the deletion to every
	// replica (see [InvalidationStore]). It returns nil only once the deletion is durable.
	Invalidate(ctx context.Context, key string) error
}

// TagStore is a [Store] that keeps the tag index itself, shared by every replica (backends/redisstore
// does, with Redis sets; backends/tieredstore passes it on). Without it a [Cache] keeps a bounded index
// in memory, which only knows the responses this process stored.
//
// A store whose type has these methods but that cannot keep tags after all (backends/tieredstore over a
// second tier without a tag index) says so with a method KeepsTags() bool that returns false: the Cache
// then keeps its own index, as for a store without the methods.
type TagStore interface {
	// TagKeys records that the entry at key carries tags, for at least ttl.
	TagKeys(ctx context.Context, key string, tags []string, ttl time.Duration) error
	// PurgeTag deletes every entry recorded under tag, forgets the tag, and returns how many entries
	// it deleted.
	PurgeTag(ctx context.Context, tag string) (int, error)
}

// InvalidationStore is a store that announces the deletions made through any of its replicas
// (backends/redisstore, with Pub/Sub), so that copies kept in this process can be dropped and the flights
// of this process that an invalidation elsewhere fenced are no longer joined: fn is called with each
// deleted key until stop is called. Delivery is asynchronous (behaviour contract §11 says what that
// bounds across replicas).
type InvalidationStore interface {
	Invalidations(fn func(key string)) (stop func())
}

// TagInvalidationStore is a [TagStore] that announces each tag purged through any of its replicas, as
// [InvalidationStore] announces keys: fn is called with each purged tag until stop is called.
type TagInvalidationStore interface {
	TagInvalidations(fn func(tag string)) (stop func())
}

// AnnotatedStore is a [Store] that keeps, beside each value, an annotation of its caller's, alive exactly
// as long as the value (backends/memstore does, and backends/tieredstore for its memory tier). The
// middleware keeps there what it learnt parsing the entry, so that an in-process hit is neither
// checksummed nor validated again: an entry's integrity is checked where it could have been corrupted,
// when it first comes from the store. Values from a store that copies (Redis) are parsed each time.
//
// Reads still go through the store's Get (a wrapper that overrides Get is never bypassed); AuxOf is then
// asked for the very slice Get returned, and must return nil unless value is the slice the store holds
// under key (compare the pointers, not the bytes).
type AnnotatedStore interface {
	AuxOf(key string, value []byte) any
	AttachAux(key string, value []byte, aux any)
}

// HoldingStore is a [Store] that can tell whether it still holds a key without that counting as a use:
// neither its eviction policy nor its statistics see the question (backends/memstore can). With a
// store that keeps no tag index of its own, the middleware keeps one in process, bounded (docs/
// behaviour.md §7.5); when it fills up, it asks Holds about the keys whose writes have ended and drops
// the pairs of the entries the store no longer holds (evicted), instead of refusing to index, and so to
// store, new tagged responses until the evicted entries' TTLs pass.
type HoldingStore interface {
	Holds(key string) bool
}

// SelfBoundedStore is a store that bounds its own calls: CallTimeout returns the longest a call can take
// (the memory store returns 0: it never blocks; the Redis store its per-operation timeout). When that
// bound is no longer than the store timeout ([WithStoreTimeout]), the middleware adds no deadline of its
// own, which saves each call the allocations of a timer.
type SelfBoundedStore interface {
	CallTimeout() time.Duration
}

// SizedStore is a store that reports what it holds in this process, as backends/memstore does; [Snapshot]
// carries it in Memory.
type SizedStore interface {
	// Len returns the number of entries held, possibly including expired ones not yet removed.
	Len() int
	// Bytes returns what the entries are charged against the store's budget.
	Bytes() int64
}

// EntryBoundedStore is a [SizedStore] bounded by its number of entries rather than by bytes (as
// backends/memstore's Values is): it does not know the size of what it holds, and reports Bytes 0.
// [Snapshot].Memory carries its bound in MaxEntries, and the Prometheus collector reports its entries
// and bound instead of a byte count.
type EntryBoundedStore interface {
	SizedStore
	// MaxEntries returns the most entries the store holds.
	MaxEntries() int
}

// EvictionCounter is a store that counts the entries it evicted to stay within its budget.
type EvictionCounter interface {
	Evictions() uint64
}

// tagStoreOf returns store as a TagStore when it keeps tags (see [TagStore]).
func tagStoreOf(store Store) (TagStore, bool) {
	ts, ok := store.(TagStore)
	if !ok {
		return nil, false
	}
	if k, ok := store.(interface{ KeepsTags() bool }); ok && !k.KeepsTags() {
		return nil, false
	}
	return ts, true
}
