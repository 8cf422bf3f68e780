package redisstore

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/redis/go-redis/v9"

	"github.com/seed-a1426414/stampede/internal/storecall"
)

// Routing in a Redis Cluster. go-redis keeps a slot map (which master serves which hash slot) and
// reloads it on a MOVED or ASK reply, or when it is older than ClusterStateReloadInterval (60 s by
// default). A master that dies or stalls sends neither: its replica takes over after
// cluster-node-timeout, but the client keeps sending that master's keys to the dead address until the
// next periodic reload, tens of seconds after the failover ended. So the store asks the client for a
// reload (ReloadState) when a node fails a call, at most once per reloadEvery per client: reloads
// during the outage return the old map, and the first one after the failover finds the new master.
//
// The store also tells nodes apart for batching (autobatch.go): concurrent calls are queued per master,
// so a batch never mixes the keys of a healthy master with those of a dead one.

// reloadEvery bounds how often one cluster client is asked to reload its slot map after failed calls.
// go-redis runs one reload at a time and coalesces requests made during it, so this only spares the
// cluster a CLUSTER SLOTS per failed batch while a node is down.
const reloadEvery = 100 * time.Millisecond

// nodeOf returns the address of the master that serves key (a Redis key, prefixed) as the client sees
// it now, or "" when there is only one node or the client cannot say (not a cluster client, or no slot
// map yet and none to be had within ctx). Calls for "" are batched together.
func (s *Store) nodeOf(ctx context.Context, key string) string {
	c, ok := s.client.(*redis.ClusterClient)
	if !ok {
		return ""
	}
	node, err := c.MasterForKey(ctx, key)
	if err != nil {
		return ""
	}
	return node.Options().Addr
}

// nodeFailed notes that a call to the cluster failed with err, and asks the client to reload its slot
// map unless it was asked less than reloadEvery ago. Errors that say nothing about a node (the caller's
// cancellation) and clients that are not cluster clients are left alone.
func (s *Store) nodeFailed(err error) {
	c, ok := s.client.(*redis.ClusterClient)
	if !ok || err == nil || errors.Is(err, context.Canceled) {
		return
	}
	last := reloadedAt(c)
	now := time.Now().UnixNano()
	prev := last.Load()
	if now-prev < int64(reloadEvery) || !last.CompareAndSwap(prev, now) {
		return
	}
	// ReloadState starts a reload in the background (go-redis's LazyReload) and returns at once; the
	// context is not used by it.
	c.ReloadState(context.Background())
}

// lastReloads holds, for each cluster client a Store has asked to reload, when it last did (unix ns).
// It is keyed by a weak pointer so that it keeps no client alive: the entry goes when the client does.
// It lives here rather than in Store because the slot map belongs to the client, which several stores
// may share.
var lastReloads sync.Map // weak.Pointer[redis.ClusterClient] -> *atomic.Int64

// reloadedAt returns the time of c's last requested reload, created at zero.
func reloadedAt(c *redis.ClusterClient) *atomic.Int64 {
	k := weak.Make(c)
	if v, ok := lastReloads.Load(k); ok {
		return v.(*atomic.Int64)
	}
	v, loaded := lastReloads.LoadOrStore(k, new(atomic.Int64))
	if !loaded {
		runtime.AddCleanup(c, func(k weak.Pointer[redis.ClusterClient]) { lastReloads.Delete(k) }, k)
	}
	return v.(*atomic.Int64)
}

// ErrNodeDown is wrapped by the error of a read of a key whose Redis Cluster master failed its last
// calls: the store answers it at once, without a round trip, instead of letting it wait for its timeout
// too. See nodeBreaker.
var ErrNodeDown = errors.New("redisstore: cluster master failing")

// Reads of a cluster master that keeps failing fail fast. Each master address has a circuit breaker
// with the rule stampede's engine applies to a whole store (internal/storecall's Breaker): once
// nodeThreshold consecutive reads of its keys failed (an error or a timeout) over at least 100 ms, its
// keys' reads return ErrNodeDown at once; after each nodeBackoff one read probes it, and a success
// closes it. The other masters are not affected, and the engine's own breaker stays closed while they
// answer (their successes keep breaking its run of failures). A read that fails fast still asks the
// client for a slot-map reload (nodeFailed), so the new master of the failed one's slots, a new
// address with a breaker of its own, is found as soon as it has taken over. A dead master refuses
// connections at once and costs nothing; a paused one (SIGSTOP, a stalled disk) would otherwise cost
// every read of its keys the store's timeout for the whole failover.
const (
	nodeThreshold = 3
	nodeBackoff   = time.Second
	// maxNodeBreakers bounds the addresses remembered: failovers add addresses, and past it the
	// breakers are forgotten (each comes back closed, to learn again).
	maxNodeBreakers = 64
)

// nodeBreaker returns node's breaker, nil for "" (not a cluster client, or no slot map).
func (s *Store) nodeBreaker(node string) *storecall.Breaker {
	if node == "" {
		return nil
	}
	if b, ok := s.nodes.Load(node); ok {
		return b.(*storecall.Breaker)
	}
	if s.nodeCount.Add(1) > maxNodeBreakers {
		s.nodes.Clear()
		s.nodeCount.Store(1)
	}
	b, _ := s.nodes.LoadOrStore(node, storecall.NewBreaker(nodeThreshold, nodeBackoff, discardLogger, "redisstore "+node))
	return b.(*storecall.Breaker)
}

// nodeAllow asks node's breaker for a read; ok is false when the read must fail fast (with
// ErrNodeDown), and the slot map is then reloaded as after a failed call.
func (s *Store) nodeAllow(b *storecall.Breaker) (ok, probe bool) {
	if b == nil {
		return true, false
	}
	if ok, probe = b.Allow(time.Now()); !ok {
		s.nodeFailed(ErrNodeDown)
	}
	return ok, probe
}

// nodeDone records a read's outcome in its node's breaker: a read whose caller left (parent canceled)
// says nothing about the node.
func nodeDone(b *storecall.Breaker, parent context.Context, probe bool, err error) {
	switch {
	case b == nil:
	case err != nil && errors.Is(parent.Err(), context.Canceled):
		b.Abandon(probe)
	default:
		b.Done(time.Now(), probe, err)
	}
}

var discardLogger = slog.New(slog.DiscardHandler)
