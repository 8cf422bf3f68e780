package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Concurrent Gets and SetExs are combined into batches: while a few batches are in flight, the calls
// that arrive wait for the next one, which carries up to the batch size of them as one MGET per slot
// (BatchGet) or one pipeline of SETs. So a burst of ten thousand concurrent look-ups costs a few dozen
// round trips on a handful of connections, instead of ten thousand requests queueing for go-redis's
// default pool of ten connections per CPU until they time out. A call that runs alone is sent at once:
// batching adds nothing to a quiet store's latency.
//
// Calls are queued per node: per master of the key's slot on a cluster client (routing.go), in one
// queue on other clients. A batch therefore holds the keys of one master only, and the batches in
// flight are counted per master: a master that is dead or stalled holds up its own keys, for at most
// their callers' timeout, and never the keys of the others.
//
// There are no background goroutines to stop: a call that finds fewer than 8 batches of its node in
// flight starts one, on a goroutine that carries on with the next batch while calls are waiting and
// ends when none is.

// DefaultBatchSize is how many calls one batch carries when WithBatching is not given.
const DefaultBatchSize = 128

// maxBatchesInFlight bounds the batches (round trips) of one kind in flight at once to one node.
const maxBatchesInFlight = 8

// maxBatchGrowth bounds how far a batch grows past the batch size while calls queue: a backlog is
// split over the batches in flight, up to this many times the size each, so that a burst of look-ups is
// sent in a few large MGETs rather than queueing behind many small ones until it times out.
const maxBatchGrowth = 8

// maxIdleQueues is how many node queues a batcher keeps once they are idle; past it an idle queue is
// dropped when its last batch ends. A cluster has a queue per master, and failovers add addresses.
const maxIdleQueues = 64

// batcher runs batches of calls of one kind, in a queue per node.
type batcher[T any] struct {
	size int
	exec func([]T)
	// gone, when set, reports a call whose caller has stopped waiting (its context ended): it is
	// dropped from the queue rather than sent, so an overloaded store is not sent work nobody awaits.
	gone func(T) bool

	mu     sync.Mutex
	queues map[string]*queue[T] // by node address ("" when the client has one); guarded by mu
}

// queue is one node's calls.
type queue[T any] struct {
	pending  []T // waiting for the next batch; guarded by the batcher's mu
	inFlight int // batches running; guarded by the batcher's mu
}

// submit queues t for node, and starts a batch when one may start now. Batches run on goroutines of
// their own, so every caller can stop waiting when its own context ends.
func (b *batcher[T]) submit(node string, t T) {
	b.mu.Lock()
	q := b.queues[node]
	if q == nil {
		if b.queues == nil {
			b.queues = make(map[string]*queue[T])
		}
		q = &queue[T]{}
		b.queues[node] = q
	}
	q.pending = append(q.pending, t)
	if q.inFlight >= maxBatchesInFlight {
		b.mu.Unlock()
		return // a running batch starts the next one when it finishes
	}
	q.inFlight++
	batch := b.takeLocked(q)
	b.mu.Unlock()
	go b.run(node, q, batch)
}

// takeLocked removes the next batch from q: up to size calls, or, while more than a batch per slot in
// flight is queued, an even share of the backlog (at most maxBatchGrowth times size). Calls whose
// callers are gone are dropped on the way. b.mu must be held.
func (b *batcher[T]) takeLocked(q *queue[T]) []T {
	size := b.size
	if size > 1 {
		size = max(size, min(len(q.pending)/maxBatchesInFlight, size*maxBatchGrowth))
	}
	batch := make([]T, 0, min(len(q.pending), size))
	i := 0
	for ; i < len(q.pending) && len(batch) < size; i++ {
		if t := q.pending[i]; b.gone == nil || !b.gone(t) {
			batch = append(batch, t)
		}
	}
	rest := copy(q.pending, q.pending[i:])
	clear(q.pending[rest:])
	q.pending = q.pending[:rest]
	return batch
}

// run executes batch, then the next ones of q while calls are waiting.
func (b *batcher[T]) run(node string, q *queue[T], batch []T) {
	for {
		if len(batch) > 0 {
			b.exec(batch)
		}
		b.mu.Lock()
		if len(q.pending) == 0 {
			q.inFlight--
			if q.inFlight == 0 && len(b.queues) > maxIdleQueues && b.queues[node] == q {
				delete(b.queues, node)
			}
			b.mu.Unlock()
			return
		}
		batch = b.takeLocked(q)
		b.mu.Unlock()
	}
}

// waiter is a batched call: its context ends when its caller stops waiting.
type waiter interface{ waitCtx() context.Context }

func (c *getCall) waitCtx() context.Context { return c.ctx }
func (c *setCall) waitCtx() context.Context { return c.ctx }

// batchContext returns the context a batch of calls runs in: it ends at the latest deadline of its
// calls (each bounded by the store's timeout already), so a batch never outlives every caller waiting
// for it, and a call is bounded by its timeout once, not by a fresh one when its batch starts late.
func batchContext[W waiter](timeout time.Duration, calls []W) (context.Context, context.CancelFunc) {
	var latest time.Time
	for _, c := range calls {
		if ctx := c.waitCtx(); ctx != nil {
			if d, ok := ctx.Deadline(); ok && d.After(latest) {
				latest = d
			}
		}
	}
	if latest.IsZero() {
		return context.WithTimeout(context.Background(), timeout)
	}
	return context.WithDeadline(context.Background(), latest)
}

// getCall is one Get waiting for its batch.
type getCall struct {
	key  string // the Redis key
	ctx  context.Context
	done chan getResult
}

// getGone reports a Get whose caller no longer waits for it.
func getGone(c *getCall) bool { return c.ctx.Err() != nil }

type getResult struct {
	value []byte
	err   error
}

// setCall is one SetEx waiting for its batch.
type setCall struct {
	key   string // the Redis key
	value []byte // encoded
	ttl   time.Duration
	ctx   context.Context // the caller's, bounded by the store's timeout
	done  chan error
}

// batchedGet is Get through the batcher.
func (s *Store) batchedGet(ctx context.Context, key string) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, opError(ctx, "get", err)
	}
	parent := ctx
	ctx, cancel := s.bound(ctx)
	defer cancel()
	c := &getCall{key: s.key(key), ctx: ctx, done: make(chan getResult, 1)}
	node := s.nodeOf(ctx, c.key)
	b := s.nodeBreaker(node)
	ok, probe := s.nodeAllow(b)
	if !ok {
		return nil, false, fmt.Errorf("redisstore: get: %w", ErrNodeDown)
	}
	s.gets.submit(node, c)
	select {
	case r := <-c.done:
		nodeDone(b, parent, probe, r.err)
		if r.err != nil {
			return nil, false, r.err
		}
		return r.value, r.value != nil, nil
	case <-ctx.Done():
		err := opError(ctx, "get", ctx.Err())
		nodeDone(b, parent, probe, err)
		return nil, false, err
	}
}

// execGets fetches one batch of Gets with one MGET per node, each key once.
func (s *Store) execGets(calls []*getCall) {
	keys := make([]string, 0, len(calls))
	index := make(map[string]int, len(calls))
	for _, c := range calls {
		if _, ok := index[c.key]; !ok {
			index[c.key] = len(keys)
			keys = append(keys, c.key)
		}
	}
	ctx, cancel := batchContext(s.cfg.timeout, calls)
	values, err := s.batchGetRaw(ctx, keys)
	cancel()
	for _, c := range calls {
		v := values[index[c.key]]
		if v == nil && err != nil {
			c.done <- getResult{err: err}
			continue
		}
		c.done <- getResult{value: v}
	}
}

// batchedSetEx is SetEx through the batcher.
func (s *Store) batchedSetEx(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return opError(ctx, "setex", err)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	c := &setCall{key: s.key(key), value: s.encode(value), ttl: ttl, ctx: ctx, done: make(chan error, 1)}
	s.sets.submit(s.nodeOf(ctx, c.key), c)
	select {
	case err := <-c.done:
		return err
	case <-ctx.Done():
		return opError(ctx, "setex", ctx.Err())
	}
}

// execSets writes one batch of SetExs (of one node) as one pipeline.
func (s *Store) execSets(calls []*setCall) {
	ctx, cancel := batchContext(s.cfg.timeout, calls)
	defer cancel()
	cmds := make([]*redis.StatusCmd, len(calls))
	_, err := run(s, ctx, func(ctx context.Context) ([]redis.Cmder, error) {
		return s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, c := range calls {
				cmds[i] = p.Set(ctx, c.key, c.value, max(c.ttl, time.Millisecond))
			}
			return nil
		})
	})
	if err != nil {
		s.nodeFailed(err)
	}
	abandoned := err != nil && s.guarded && ctx.Err() != nil // the pipeline may still be filling cmds
	for i, c := range calls {
		e := err
		switch {
		case !abandoned && cmds[i] != nil:
			e = cmds[i].Err()
		case e == nil:
			e = errBatchNotQueued
		}
		if e != nil {
			e = opError(ctx, "setex", e)
		}
		c.done <- e
	}
}

// errBatchNotQueued is what a call of a batch learns when its command was never queued.
var errBatchNotQueued = errors.New("redisstore: batch not sent")
