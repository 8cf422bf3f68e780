package redisstore

import (
	"cmp"
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Fleet coalescing: the methods below let stampede.WithFleetCoalescing run a handler once per key across
// every replica sharing this Redis. A replica that misses takes a lease (TryLease); the holder stores the
// response only while it still holds the lease (SetExFenced) and then releases it with a notice
// (Release); the others wait for the notice (WaitRelease) and read the stored entry.
//
// The lease of key lives at key+":lock". Store keys carry their hash tag in the first {...}, so the lock
// and the value share a Redis Cluster slot and the scripts below may touch both.

// Lease outcomes announced by Release and returned by WaitRelease.
const (
	OutcomeStored = "stored" // the holder stored the entry: read it
	OutcomePass   = "pass"   // the response may not be shared: run your own handler
	OutcomeMiss   = "miss"   // nothing was stored (not storable, failed write): try the lease again
	OutcomeGone   = "gone"   // the lease disappeared without a notice (it expired, or a notice was missed)
)

// lockSuffix is appended to a key to name its lease.
const lockSuffix = ":lock"

var (
	// release: KEYS[1] lock; ARGV[1] token, ARGV[2] channel, ARGV[3] message. Only the holder deletes
	// the lease and announces it, so a late holder never wakes the waiters of the one that took over.
	release = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return 1
end
return 0`)
)

// TryLease takes the lease on key for lease (SET key:lock token NX PX lease, in a script that names the
// token after the server's clock). held reports whether this caller got it; token identifies the holder
// to Release and is a ticket for SetFenced while the lease is held (see fenced.go).
func (s *Store) TryLease(ctx context.Context, key string, lease time.Duration) (token string, held bool, err error) {
	random := newRandom()
	ctx, cancel := s.bound(ctx)
	defer cancel()
	token, err = run(s, ctx, func(ctx context.Context) (string, error) {
		return leaseScript.Run(ctx, s.client, []string{s.key(key) + lockSuffix}, random, max(lease, time.Millisecond).Milliseconds()).Text()
	})
	switch {
	case errors.Is(err, redis.Nil):
		return "", false, nil
	case err != nil:
		return "", false, opError(ctx, "trylease", err)
	}
	return token, true, nil
}

// SetExFenced stores value under key for ttl only while token holds key's lease: SetFenced(ctx, key,
// token, key, value, ttl, nil). It is kept for callers written before tickets.
func (s *Store) SetExFenced(ctx context.Context, key string, value []byte, ttl time.Duration, token string) (stored bool, err error) {
	return s.SetFenced(ctx, key, token, key, value, ttl, nil)
}

// Release gives up key's lease if token still holds it (compare-and-delete) and then announces outcome
// to every replica waiting in WaitRelease. A lease that expired or was taken over is left alone and
// nothing is announced.
func (s *Store) Release(ctx context.Context, key, token, outcome string) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	_, err := run(s, ctx, func(ctx context.Context) (int64, error) {
		return release.Run(ctx, s.client, []string{s.key(key) + lockSuffix}, token, s.channel(fleetChannel), outcome+" "+key).Int64()
	})
	if err != nil {
		return opError(ctx, "release", err)
	}
	return nil
}

// WaitRelease blocks until key's lease is released (it returns the holder's outcome) or is gone without
// a notice (OutcomeGone: it expired, or Redis lost it), or ctx ends. Notices arrive on one Pub/Sub
// connection the Store shares between all its waiters; in case one is missed, the lease is also polled
// with a jittered back-off that never sleeps past its expiry. Close stops the subscription.
func (s *Store) WaitRelease(ctx context.Context, key string) (outcome string, err error) {
	l := s.listen()
	ch, stop := l.wait(key)
	defer stop()
	select { // the first check of the lease must follow the subscription, or a notice could slip by
	case <-l.ready:
	case <-ctx.Done():
		return "", ctx.Err()
	case <-time.After(s.cfg.timeout):
		// Not subscribed yet (Redis unreachable?): rely on polling.
	}
	lock := s.key(key) + lockSuffix
	backoff := cmp.Or(s.pollEvery, 2*time.Millisecond)
	maxBackoff := max(backoff, 250*time.Millisecond)
	for {
		pctx, cancel := s.bound(ctx)
		pttl, err := run(s, pctx, func(ctx context.Context) (time.Duration, error) {
			return s.client.PTTL(ctx, lock).Result()
		})
		cancel()
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			return "", opError(pctx, "waitrelease", err)
		case pttl == -2: // no such key
			select {
			case o := <-ch: // the notice may have arrived meanwhile; prefer what the holder said
				return o, nil
			default:
				return OutcomeGone, nil
			}
		}
		sleep := backoff/2 + rand.N(backoff) // jittered around backoff
		if pttl > 0 && pttl+time.Millisecond < sleep {
			sleep = pttl + time.Millisecond // look again right after the lease expires
		}
		backoff = min(2*backoff, maxBackoff)
		t := time.NewTimer(sleep)
		select {
		case o := <-ch:
			t.Stop()
			return o, nil
		case <-ctx.Done():
			t.Stop()
			return "", ctx.Err()
		case <-t.C:
		}
	}
}

// Invalidations calls fn with the key of every Delete made through any Store with this key prefix, on
// any replica, until the returned stop function is called. Two-tier stores use it to drop their local
// copy of a purged entry. fn runs on the subscription's goroutine and must not block.
func (s *Store) Invalidations(fn func(key string)) (stop func()) {
	l := s.listen()
	l.mu.Lock()
	id := l.nextID
	l.nextID++
	l.invalidate[id] = fn
	l.mu.Unlock()
	return func() {
		l.mu.Lock()
		delete(l.invalidate, id)
		l.mu.Unlock()
	}
}

// Close stops the Store's Pub/Sub subscription, if WaitRelease or Invalidations started one. It does not
// close the client. The Store stays usable; a later WaitRelease subscribes again.
func (s *Store) Close() error {
	s.lmu.Lock()
	l := s.listener
	s.listener = nil
	s.lmu.Unlock()
	if l == nil {
		return nil
	}
	l.cancel()
	l.mu.Lock()
	if l.sub != nil {
		_ = l.sub.Close() // unblocks Receive, which does not watch its context
	}
	l.mu.Unlock()
	<-l.done
	return nil
}

// Channel names, under the store's key prefix (Pub/Sub channels ignore the database number, so the
// prefix is what keeps two applications apart).
const (
	fleetChannel      = "stampede-fleet"
	invalidateChannel = "stampede-invalidate"
	tagChannel        = "stampede-tag-invalidate"
)

func (s *Store) channel(name string) string { return s.cfg.prefix + name }

// listener is a Store's one Pub/Sub subscription and the waiters it wakes.
type listener struct {
	ready  chan struct{} // closed once the subscription is confirmed
	done   chan struct{} // closed when the goroutine has exited
	cancel context.CancelFunc

	mu            sync.Mutex
	sub           *redis.PubSub            // the current subscription; guarded by mu
	waiters       map[string][]chan string // guarded by mu; each channel has room for one outcome
	invalidate    map[int]func(string)     // guarded by mu
	tagInvalidate map[int]func(string)     // guarded by mu
	nextID        int                      // guarded by mu
}

// listen returns the Store's listener, starting it on first use.
func (s *Store) listen() *listener {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	if s.listener != nil {
		return s.listener
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &listener{ready: make(chan struct{}), done: make(chan struct{}), cancel: cancel,
		waiters: map[string][]chan string{}, invalidate: map[int]func(string){}, tagInvalidate: map[int]func(string){}}
	s.listener = l
	go l.run(ctx, s)
	return l
}

// run keeps the subscription up, reconnecting with a back-off when Redis goes away, and dispatches
// notices until ctx ends.
func (l *listener) run(ctx context.Context, s *Store) {
	defer close(l.done)
	fleet, inval, tags := s.channel(fleetChannel), s.channel(invalidateChannel), s.channel(tagChannel)
	var once sync.Once
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		sub := s.client.Subscribe(ctx, fleet, inval, tags)
		l.mu.Lock()
		l.sub = sub
		l.mu.Unlock()
		if ctx.Err() != nil { // Close ran before sub was published
			_ = sub.Close()
			return
		}
		for ctx.Err() == nil {
			msg, err := sub.Receive(ctx)
			if err != nil {
				break
			}
			backoff = 50 * time.Millisecond
			switch m := msg.(type) {
			case *redis.Subscription:
				if m.Kind == "subscribe" && m.Count == 3 {
					once.Do(func() { close(l.ready) })
				}
			case *redis.Message:
				switch m.Channel {
				case inval:
					l.invalidated(l.invalidate, m.Payload)
					continue
				case tags:
					l.invalidated(l.tagInvalidate, m.Payload)
					continue
				}
				if outcome, key, ok := strings.Cut(m.Payload, " "); ok {
					l.notify(key, outcome)
				}
			}
		}
		_ = sub.Close()
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
			backoff = min(2*backoff, 2*time.Second)
		}
	}
}

// wait registers a waiter for key's notice; stop unregisters it.
func (l *listener) wait(key string) (ch chan string, stop func()) {
	ch = make(chan string, 1)
	l.mu.Lock()
	l.waiters[key] = append(l.waiters[key], ch)
	l.mu.Unlock()
	return ch, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		ws := l.waiters[key]
		for i, w := range ws {
			if w == ch {
				ws = append(ws[:i], ws[i+1:]...)
				break
			}
		}
		if len(ws) == 0 {
			delete(l.waiters, key)
		} else {
			l.waiters[key] = ws
		}
	}
}

// notify hands outcome to every waiter of key.
func (l *listener) notify(key, outcome string) {
	l.mu.Lock()
	ws := l.waiters[key]
	delete(l.waiters, key)
	l.mu.Unlock()
	for _, ch := range ws {
		select {
		case ch <- outcome:
		default:
		}
	}
}

// invalidated calls each function of fns (l.invalidate or l.tagInvalidate) with key.
func (l *listener) invalidated(fns map[int]func(string), key string) {
	l.mu.Lock()
	list := make([]func(string), 0, len(fns))
	for _, fn := range fns {
		list = append(list, fn)
	}
	l.mu.Unlock()
	for _, fn := range list {
		fn(key)
	}
}

// run calls fn with ctx, on another goroutine when the client ignores context deadlines (see guard).
func run[T any](s *Store, ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	if s.guarded {
		return guard(ctx, fn)
	}
	return fn(ctx)
}
