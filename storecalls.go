package stampede

import (
	"context"
	"sync"
	"time"
)

// storeCalls is the store-call convention every user of a store shares: each call goes through the
// circuit breaker, is bounded by the store timeout (unless the store bounds its own calls), and an error
// or a timeout only ever counts as a miss or a failed write, in the stats, never as a failure of the
// caller (docs/behaviour.md §7.1).
type storeCalls struct {
	breaker *breaker
	stats   *stats
	timeout time.Duration
	bounded bool // the store bounds its own calls: no deadline is added (a memory hit stays timer-free)
	clock   func() time.Time
}

// selfBounded reports whether store bounds its own calls within timeout (see [Store]).
func selfBounded(store any, timeout time.Duration) bool {
	b, ok := store.(SelfBoundedStore)
	return ok && b.CallTimeout() <= timeout
}

// ctx returns the context of one store call made for parent, and what to release once the call
// returned (nil when nothing: the store bounds its own calls, so a memory hit stays timer-free).
func (s *storeCalls) ctx(parent context.Context) (context.Context, *boundedCtx) {
	if s.bounded {
		return parent, nil
	}
	b := &boundedCtx{Context: parent, timeout: s.timeout}
	return b, b
}

// boundedCtx is parent with a deadline, as context.WithTimeout makes it, but lazy: the deadline is
// fixed when the store first asks for it (or for Done or Err), timeout from then, and the timer and the
// Done channel are made only if the store asks for Done. Most store calls only read the deadline (a
// client sets its socket deadlines from it) or nothing at all (an in-process store), so a call costs one
// small allocation instead of a clock read, a context, a timer and a closure.
type boundedCtx struct {
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
func (c *boundedCtx) Deadline() (time.Time, bool) {
	c.mu.Lock()
	own := c.deadlineLocked()
	c.mu.Unlock()
	if d, ok := c.Context.Deadline(); ok && d.Before(own) {
		return d, true
	}
	return own, true
}

// deadlineLocked returns the call's own deadline, fixing it at the first call.
func (c *boundedCtx) deadlineLocked() time.Time {
	if c.deadline.IsZero() {
		c.deadline = time.Now().Add(c.timeout)
	}
	return c.deadline
}

// Done returns a channel closed when the deadline passes, the parent ends or the call is released.
func (c *boundedCtx) Done() <-chan struct{} {
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
func (c *boundedCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = c.expired()
	}
	return c.err
}

// expired returns the parent's error, or DeadlineExceeded past the deadline, or nil; c.mu is held.
func (c *boundedCtx) expired() error {
	if err := c.Context.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadlineLocked()) {
		return context.DeadlineExceeded
	}
	return nil
}

// end ends the context with err, if it has not ended yet.
func (c *boundedCtx) end(err error) {
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

// release ends a call's context once the call returned, as a CancelFunc would; nil releases nothing.
func (c *boundedCtx) release() {
	if c != nil {
		c.end(context.Canceled)
	}
}

// begin asks the breaker for a call; ok is false when the store is being skipped. A closed breaker
// costs one atomic load and no clock read.
func (s *storeCalls) begin() (ok, probe bool) {
	if !s.breaker.isOpen.Load() {
		return true, false
	}
	return s.breaker.allow(s.clock())
}

// healthy reports whether a successful call needs no recording: the breaker neither counts failures
// nor waits for a probe.
func (s *storeCalls) healthy(probe bool, err error) bool {
	return err == nil && !probe && !s.breaker.troubled()
}

// endRead records the outcome of a read made for parent: a read abandoned by its caller says nothing
// about the store.
func (s *storeCalls) endRead(parent context.Context, probe bool, err error) {
	if s.healthy(probe, err) {
		return
	}
	if err != nil && parent.Err() != nil {
		s.breaker.abandon(probe)
		return
	}
	s.breaker.done(s.clock(), probe, err)
	if err != nil {
		s.stats.getErrors.Add(1)
	}
}

// endWrite records the outcome of a write.
func (s *storeCalls) endWrite(probe bool, err error) {
	if s.healthy(probe, err) {
		return
	}
	s.breaker.done(s.clock(), probe, err)
	if err != nil {
		s.stats.setErrors.Add(1)
	}
}
