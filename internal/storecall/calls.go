// Package storecall is the store-call convention every front-end shares (docs/behaviour.md §7.1): each
// call goes through the circuit breaker, is bounded by the store timeout (unless the store bounds its own
// calls), and an error or a timeout only ever counts as a miss or a failed write, never as a failure of
// the caller. It also holds the two protocols a flight runs against a shared store: the fleet lease loop
// (one run per key across replicas) and tickets (writes fenced against invalidations from any replica).
//
// It knows nothing of HTTP or of the values stored: reads and writes are functions the caller gives.
package storecall

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Config is what a Calls is built from.
type Config struct {
	Timeout time.Duration    // bound on each call
	Bounded bool             // the store bounds its own calls within Timeout: no deadline is added
	Clock   func() time.Time // the front-end's clock
	Logger  *slog.Logger
	Name    string // the cache's or loader's name, for logs

	Threshold int           // breaker: consecutive failures that open it
	Backoff   time.Duration // breaker: first open window

	// Counters the calls count into; any may be nil.
	GetErrors, SetErrors, Fenced *atomic.Uint64
	// Observe, when set, is told of every call that reached the store: the context of the request or
	// load it was made for (context.Background() for writes, which are the flight's), its operation
	// ("get", "set", "delete", "lease", "ticket", "tag"), how long it took, and its error.
	Observe func(ctx context.Context, op string, d time.Duration, err error)
}

// Calls makes store calls under the convention. It is safe for concurrent use.
type Calls struct {
	cfg     Config
	breaker *Breaker
}

// New returns the Calls of one cache or loader.
func New(cfg Config) *Calls {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Calls{cfg: cfg, breaker: NewBreaker(cfg.Threshold, cfg.Backoff, cfg.Logger, cfg.Name)}
}

// Breaker returns the calls' circuit breaker.
func (c *Calls) Breaker() *Breaker { return c.breaker }

// Bounded reports whether the store bounds its own calls (no deadline is added: a memory hit stays
// timer-free).
func (c *Calls) Bounded() bool { return c.cfg.Bounded }

// Timeout returns the bound on each call.
func (c *Calls) Timeout() time.Duration { return c.cfg.Timeout }

// SelfBounded reports whether store bounds its own calls within timeout: it has a method CallTimeout
// (stampede's SelfBoundedStore) that says so.
func SelfBounded(store any, timeout time.Duration) bool {
	b, ok := store.(interface{ CallTimeout() time.Duration })
	return ok && b.CallTimeout() <= timeout
}

// Begin asks the breaker for a call; ok is false when the store is being skipped. A closed breaker
// costs one atomic load and no clock read.
func (c *Calls) Begin() (ok, probe bool) {
	if !c.breaker.isOpen.Load() {
		return true, false
	}
	return c.breaker.Allow(c.cfg.Clock())
}

// Ctx returns the context of one store call made for parent, and what to release once the call
// returned (nil: the store bounds its own calls).
func (c *Calls) Ctx(parent context.Context) (context.Context, *BoundedCtx) {
	if c.cfg.Bounded {
		return parent, nil
	}
	b := &BoundedCtx{Context: parent, timeout: c.cfg.Timeout}
	return b, b
}

// EndRead records the outcome of a read made for parent: a read abandoned by its caller says nothing
// about the store.
func (c *Calls) EndRead(parent context.Context, probe bool, err error) {
	if err == nil && !probe && !c.breaker.troubled() {
		return
	}
	if err != nil && parent.Err() != nil {
		c.breaker.Abandon(probe)
		return
	}
	c.breaker.Done(c.cfg.Clock(), probe, err)
	if err != nil {
		count(c.cfg.GetErrors)
	}
}

// EndWrite records the outcome of a write.
func (c *Calls) EndWrite(probe bool, err error) {
	if err == nil && !probe && !c.breaker.troubled() {
		return
	}
	c.breaker.Done(c.cfg.Clock(), probe, err)
	if err != nil {
		count(c.cfg.SetErrors)
	}
}

func count(n *atomic.Uint64) {
	if n != nil {
		n.Add(1)
	}
}

// observe times a call that reached the store, when an observer is set.
func (c *Calls) observe(ctx context.Context, op string, start time.Time, err error) {
	if c.cfg.Observe != nil {
		c.cfg.Observe(ctx, op, time.Since(start), err)
	}
}

func (c *Calls) now() time.Time {
	if c.cfg.Observe == nil {
		return time.Time{}
	}
	return time.Now()
}

// Result is what a read found.
type Result uint8

const (
	Miss    Result = iota // nothing
	Found                 // a value
	Skipped               // the breaker skipped the store: nothing was read
	// Failed: the store did not answer (an error, a timeout). A miss all the same for the caller, who
	// should make no further store call for the same request: one store timeout is all a request may
	// pay for a sick store.
	Failed
)

// Read makes one read for parent through the breaker and the deadline: get is the store call.
func Read[T any](c *Calls, parent context.Context, get func(ctx context.Context) (T, bool, error)) (T, Result) {
	var zero T
	ok, probe := c.Begin()
	if !ok {
		return zero, Skipped
	}
	start := c.now()
	ctx, bound := c.Ctx(parent)
	v, found, err := get(ctx)
	bound.Release()
	c.observe(parent, "get", start, err)
	c.EndRead(parent, probe, err)
	switch {
	case err != nil:
		return zero, Failed
	case !found:
		return zero, Miss
	}
	return v, Found
}

// ErrSkipped is the error of a write or deletion the breaker did not let through.
var ErrSkipped = errors.New("stampede: store skipped by the circuit breaker")

// ErrPanicked is the error of a store call that panicked: a store that panics must not take the
// process down.
var ErrPanicked = errors.New("stampede: store panicked")

// Write makes one write through the breaker and the deadline, with a context detached from any
// caller's (a write is the flight's, not a request's): set returns whether it stored (a fenced write may
// refuse). A write that timed out is tried once more: the flight, and so its value for the callers that
// arrive meanwhile, stays until the write is done, and a busy store that loses a write would cost a
// second load of the key.
func (c *Calls) Write(op string, set func(ctx context.Context) (stored bool, err error)) (stored bool, err error) {
	for attempt := 0; ; attempt++ {
		stored, err = c.writeOnce(op, set)
		if stored || attempt == 1 || !errors.Is(err, context.DeadlineExceeded) {
			return stored, err
		}
	}
}

func (c *Calls) writeOnce(op string, set func(ctx context.Context) (bool, error)) (stored bool, err error) {
	ok, probe := c.Begin()
	if !ok {
		return false, ErrSkipped
	}
	defer func() {
		if p := recover(); p != nil {
			stored, err = false, ErrPanicked
			c.EndWrite(probe, err)
		}
	}()
	start := c.now()
	ctx, bound := c.Ctx(context.Background())
	stored, err = set(ctx)
	if ctx.Err() != nil && err != nil && !errors.Is(err, context.DeadlineExceeded) {
		err = errors.Join(context.DeadlineExceeded, err) // a store that wraps the deadline differently
	}
	bound.Release()
	c.observe(context.Background(), op, start, err)
	c.EndWrite(probe, err)
	if err != nil {
		c.cfg.Logger.Debug("stampede: store "+op+" failed", "cache", c.cfg.Name, "error", err)
		return false, err
	}
	if !stored {
		count(c.cfg.Fenced)
	}
	return stored, nil
}

// Delete makes one deletion (or invalidation) for parent through the breaker and the deadline. An open
// breaker makes it fail with ErrSkipped: a deletion is never silently dropped.
func (c *Calls) Delete(parent context.Context, del func(ctx context.Context) error) (err error) {
	ok, probe := c.Begin()
	if !ok {
		return ErrSkipped
	}
	defer func() {
		if p := recover(); p != nil {
			err = ErrPanicked
			c.EndWrite(probe, err)
		}
	}()
	start := c.now()
	ctx, bound := c.Ctx(parent)
	err = del(ctx)
	bound.Release()
	c.observe(parent, "delete", start, err)
	c.EndWrite(probe, err)
	return err
}

// BoundedCtx is parent with a deadline, as context.WithTimeout makes it, but lazy: the deadline is
// fixed when the store first asks for it (or for Done or Err), timeout from then, and the timer and the
// Done channel are made only if the store asks for Done. Most store calls only read the deadline (a
// client sets its socket deadlines from it) or nothing at all (an in-process store), so a call costs one
// small allocation instead of a clock read, a context, a timer and a closure.
type BoundedCtx struct {
	context.Context
	timeout time.Duration

	mu         sync.Mutex
	deadline   time.Time     // guarded by mu; zero until first asked for
	done       chan struct{} // guarded by mu; made by the first Done
	err        error         // guarded by mu; set once the context ends
	timer      *time.Timer   // guarded by mu
	stopParent func() bool   // guarded by mu
}

// Deadline returns the earlier of the call's deadline and the parent's.
func (c *BoundedCtx) Deadline() (time.Time, bool) {
	c.mu.Lock()
	own := c.deadlineLocked()
	c.mu.Unlock()
	if d, ok := c.Context.Deadline(); ok && d.Before(own) {
		return d, true
	}
	return own, true
}

// deadlineLocked returns the call's own deadline, fixing it at the first call.
func (c *BoundedCtx) deadlineLocked() time.Time {
	if c.deadline.IsZero() {
		c.deadline = time.Now().Add(c.timeout)
	}
	return c.deadline
}

// Done returns a channel closed when the deadline passes, the parent ends or the call is released.
func (c *BoundedCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done != nil {
		return c.done
	}
	c.done = make(chan struct{})
	if c.err == nil {
		c.err = c.expired()
	}
	if c.err != nil {
		close(c.done)
		return c.done
	}
	c.timer = time.AfterFunc(time.Until(c.deadlineLocked()), func() { c.end(context.DeadlineExceeded) })
	c.stopParent = context.AfterFunc(c.Context, func() { c.end(context.Cause(c.Context)) })
	return c.done
}

// Err returns why the context ended, or nil.
func (c *BoundedCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = c.expired()
	}
	return c.err
}

// expired returns the parent's error, or DeadlineExceeded past the deadline, or nil; c.mu is held.
func (c *BoundedCtx) expired() error {
	if err := c.Context.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadlineLocked()) {
		return context.DeadlineExceeded
	}
	return nil
}

// end ends the context with err, if it has not ended yet.
func (c *BoundedCtx) end(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
	if c.done != nil {
		select {
		case <-c.done:
		default:
			close(c.done)
		}
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.stopParent != nil {
		c.stopParent()
	}
}

// Release ends a call's context once the call returned, as a CancelFunc would; nil releases nothing.
func (c *BoundedCtx) Release() {
	if c != nil {
		c.end(context.Canceled)
	}
}
