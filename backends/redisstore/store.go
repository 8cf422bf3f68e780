package redisstore

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrTimeout is wrapped by the error of an operation that ran out of time: the store's timeout or the
// caller's deadline passed before Redis answered. Match it with errors.Is.
var ErrTimeout = errors.New("redisstore: timeout")

// Store keeps encoded entries in Redis. It is safe for concurrent use, holds no state besides its
// configuration, and never closes the client it was given.
type Store struct {
	client redis.UniversalClient
	cfg    config
	// guarded is set when the client does not pass context deadlines to its sockets
	// (ContextTimeoutEnabled is off, or the client type is unknown): the store then enforces its
	// timeout itself by waiting for the reply on another goroutine and abandoning it at the deadline.
	guarded bool
	// batch says how BatchGet splits keys into MGETs that one node can answer.
	batch batchMode

	// gets and sets combine concurrent calls into batches (see WithBatching).
	gets batcher[*getCall]
	sets batcher[*setCall]

	// nodes holds a circuit breaker per cluster master address (routing.go, nodeBreaker); nodeCount
	// counts the addresses added.
	nodes     sync.Map
	nodeCount atomic.Int32

	// pollEvery is WaitRelease's first interval between looks at the lease (zero: 2 ms). Only tests
	// change it, to tell a waiter woken by the holder's notice from one that saw the lease disappear.
	pollEvery time.Duration

	replicas replicaState // what Invalidate learnt of the master's replicas (fenced.go)

	lmu      sync.Mutex // guards listener
	listener *listener  // the Pub/Sub subscription of WaitRelease and Invalidations; nil until used
}

// New returns a Store that keeps entries in Redis through client, which may be a *redis.Client (single
// node or Sentinel failover), a *redis.ClusterClient or any other redis.UniversalClient.
// It panics, with a message starting "stampede: ", on a nil client (a typed nil included) or an
// invalid option.
func New(client redis.UniversalClient, opts ...Option) *Store {
	if client == nil || reflect.ValueOf(client).Kind() == reflect.Pointer && reflect.ValueOf(client).IsNil() {
		panic("stampede: redisstore: New expects a non-nil client")
	}
	cfg := config{timeout: DefaultTimeout}
	for _, o := range opts {
		o(&cfg)
	}
	switch {
	case cfg.timeout < 0:
		panic(fmt.Sprintf("stampede: redisstore: WithTimeout expects d >= 0, got %v", cfg.timeout))
	case cfg.timeout == 0:
		cfg.timeout = DefaultTimeout
	}
	if cfg.threshold < 0 {
		panic(fmt.Sprintf("stampede: redisstore: WithCompression expects threshold >= 0, got %d", cfg.threshold))
	}
	switch {
	case cfg.maxValue < 0:
		panic(fmt.Sprintf("stampede: redisstore: WithMaxValueBytes expects n >= 0, got %d", cfg.maxValue))
	case cfg.maxValue == 0:
		cfg.maxValue = DefaultMaxValueBytes
	}

	switch {
	case cfg.batch < 0:
		panic(fmt.Sprintf("stampede: redisstore: WithBatching expects n >= 0, got %d", cfg.batch))
	case cfg.batch == 0:
		cfg.batch = DefaultBatchSize
	}
	s := &Store{client: client, cfg: cfg, guarded: true, batch: batchByTag}
	s.gets = batcher[*getCall]{size: cfg.batch, exec: s.execGets, gone: getGone}
	s.sets = batcher[*setCall]{size: cfg.batch, exec: s.execSets}
	switch c := client.(type) {
	case *redis.Client:
		s.guarded, s.batch = !c.Options().ContextTimeoutEnabled, batchOne
	case *redis.ClusterClient:
		s.guarded, s.batch = !c.Options().ContextTimeoutEnabled, batchBySlot
	case *redis.Ring:
		s.guarded = !c.Options().ContextTimeoutEnabled
	}
	return s
}

// Get returns the entry stored under key. A missing key is (nil, false, nil). A value this package did
// not write, or a compressed value that does not decompress, is returned as stored: the entry decoder
// rejects it, so the middleware treats it as a miss and overwrites it (docs/behaviour.md §6.4); errors
// are kept for Redis being unreachable or slow. The returned slice may share memory with go-redis's
// reply (no copy is made); as the Store contract says, nobody may modify it.
func (s *Store) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if s.cfg.batch > 1 {
		return s.batchedGet(ctx, key)
	}
	parent := ctx
	ctx, cancel := s.bound(ctx)
	defer cancel()
	rkey := s.key(key)
	nb := s.nodeBreaker(s.nodeOf(ctx, rkey))
	ok, probe := s.nodeAllow(nb)
	if !ok {
		return nil, false, fmt.Errorf("redisstore: get: %w", ErrNodeDown)
	}
	var (
		b   []byte
		err error
	)
	if s.guarded {
		b, err = guard(ctx, func(ctx context.Context) ([]byte, error) {
			return s.client.Get(ctx, rkey).Bytes()
		})
	} else {
		b, err = s.client.Get(ctx, rkey).Bytes()
	}
	found := err == nil
	if errors.Is(err, redis.Nil) {
		err = nil
	} else if err != nil {
		s.nodeFailed(err)
		err = opError(ctx, "get", err)
	}
	nodeDone(nb, parent, probe, err)
	if !found {
		return nil, false, err
	}
	return decode(b, s.cfg.maxValue), true, nil
}

// SetEx stores value under key for ttl (SET key value PX ms; a ttl below a millisecond counts as one),
// compressed when WithCompression says so. It returns when Redis acknowledged the write or the timeout
// passed; callers that must not wait for it run it on their own goroutine. A ttl that is not above zero
// is an error and nothing is written.
func (s *Store) SetEx(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("redisstore: setex: ttl %v is not above zero", ttl)
	}
	if s.cfg.batch > 1 {
		return s.batchedSetEx(ctx, key, value, ttl)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	cmd := redis.NewStatusCmd(ctx, "set", s.key(key), s.encode(value), "px", max(ttl.Milliseconds(), 1))
	var err error
	if s.guarded {
		_, err = guard(ctx, func(ctx context.Context) (struct{}, error) {
			return struct{}{}, s.client.Process(ctx, cmd)
		})
	} else {
		err = s.client.Process(ctx, cmd)
	}
	if err != nil {
		return opError(ctx, "setex", err)
	}
	return nil
}

// Delete removes key; a missing key is not an error. Like Invalidate, it revokes key's tickets and
// lease (deleted first, so no write fenced by them lands after the value is gone), and announces key on
// the invalidation channel (see Invalidations), so two-tier caches on every replica drop their local
// copy; unlike Invalidate it is not one atomic step (so that it needs no hash tag in a Redis Cluster) and
// does not wait for a replica.
func (s *Store) Delete(ctx context.Context, key string) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	k := s.key(key)
	_, err := run(s, ctx, func(ctx context.Context) ([]redis.Cmder, error) {
		return s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, k+ticketSuffix)
			p.Del(ctx, k+lockSuffix)
			p.Del(ctx, k)
			p.Publish(ctx, s.channel(invalidateChannel), key)
			return nil
		})
	})
	if err != nil {
		return opError(ctx, "delete", err)
	}
	return nil
}

// key returns the Redis key for a store key. Without a prefix it is the key itself, with no allocation.
func (s *Store) key(k string) string { return s.cfg.prefix + k }

// bound returns ctx limited to the store's timeout. A caller deadline that comes first is kept as it is,
// which saves the timer on the middleware's path (it already bounds each call).
func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= s.cfg.timeout {
		return ctx, noCancel
	}
	return context.WithTimeout(ctx, s.cfg.timeout)
}

func noCancel() {}

// guard runs fn on its own goroutine and returns its result, or ctx's error as soon as ctx is done. It is
// for clients that ignore context deadlines on their sockets: the abandoned call finishes in the
// background within the client's own ReadTimeout/WriteTimeout, and its result is dropped.
func guard[T any](ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1) // buffered: an abandoned call must not block forever on its send
	go func() {
		v, err := fn(ctx)
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// opError wraps err from operation op, adding ErrTimeout when time ran out: the bounded context expired,
// or the client reported a timeout (go-redis turns deadlines into net timeouts).
func opError(ctx context.Context, op string, err error) error {
	var te interface{ Timeout() bool }
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || (errors.As(err, &te) && te.Timeout()) {
		return fmt.Errorf("%w: %s: %w", ErrTimeout, op, err)
	}
	return fmt.Errorf("redisstore: %s: %w", op, err)
}

// CallTimeout returns the bound the store puts on each of its calls. The stampede middleware reads it
// and, when it is within its own store timeout, adds no second deadline of its own.
func (s *Store) CallTimeout() time.Duration { return s.cfg.timeout }
