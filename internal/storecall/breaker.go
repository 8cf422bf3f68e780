package storecall

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// MinFailingSpan is how long a run of failures must last before the breaker opens (see Breaker).
const MinFailingSpan = 100 * time.Millisecond

// Breaker skips a store that keeps failing (docs/behaviour.md §7.1), so a dead or paused store costs
// requests nothing instead of a timeout each. One rule for every front-end: closed, every call goes
// through; once Threshold consecutive calls have failed (an error or a timeout; a success in between
// starts the count again) over at least MinFailingSpan, it opens for the back-off. Then one call, the
// probe, goes through: success closes it, failure re-opens it for the same back-off. A call abandoned
// by its caller says nothing about the store and is not counted. It logs once when it opens and once
// when it closes.
//
// The back-off does not grow while probes keep failing: a store that comes back (a failover that
// ended, a restarted server) is used again within one back-off, at the price of one request per
// back-off that pays a store call to a store that is still down (one store timeout at most, nothing
// for a refused connection).
//
// The span keeps a store that still answers part of its calls (a Redis Cluster with one master down, a
// store short of connections) from being skipped as a whole: its successes keep breaking the run of
// failures, and only the calls to its sick part pay their timeout. A dead store answers nothing and a
// paused one times out every call, so the breaker opens within Threshold failures and MinFailingSpan of
// the first of them.
//
// A healthy store costs a call one atomic load: successes are only recorded while failures are being
// counted or the breaker is open.
type Breaker struct {
	threshold int
	base      time.Duration
	logger    *slog.Logger
	name      string

	// isOpen and failing mirror open and fails > 0, read without mu so that a healthy store costs every
	// call one atomic load of each and no lock.
	isOpen  atomic.Bool
	failing atomic.Bool
	untilNs atomic.Int64 // until, in unix ns, so an open breaker refuses calls without taking mu

	mu      sync.Mutex
	fails   int       // consecutive failures; guarded by mu
	first   time.Time // when the first of them was recorded; guarded by mu
	open    bool      // guarded by mu
	until   time.Time // while open, calls before this are skipped; guarded by mu
	probing bool      // a probe is in flight; guarded by mu
	trips   uint64    // times it opened; guarded by mu
}

// NewBreaker returns a closed breaker that opens after threshold consecutive failures for backoff at
// first. name and logger are for its two log lines.
func NewBreaker(threshold int, backoff time.Duration, logger *slog.Logger, name string) *Breaker {
	return &Breaker{threshold: threshold, base: backoff, logger: logger, name: name}
}

// Open reports whether the breaker is open: one atomic load.
func (b *Breaker) Open() bool { return b.isOpen.Load() }

// troubled reports whether the breaker counts failures or is open: a successful call must then be
// recorded.
func (b *Breaker) troubled() bool { return b.failing.Load() || b.isOpen.Load() }

// Allow reports whether a store call may be made at now. While open it lets exactly one call through,
// the probe, once the back-off has passed; probe tells the caller it holds that token and must hand it
// back with Done or Abandon.
func (b *Breaker) Allow(now time.Time) (ok, probe bool) {
	if !b.isOpen.Load() {
		return true, false
	}
	if now.UnixNano() < b.untilNs.Load() {
		return false, false // inside the back-off: the common case while a store is down
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open {
		return true, false
	}
	if b.probing || now.Before(b.until) {
		return false, false
	}
	b.probing = true
	return true, true
}

// Done records the outcome of a call that Allow let through. While the breaker is open only the probe's
// outcome counts: calls that started before it opened and fail afterwards say nothing new, and letting
// them extend the back-off would keep a recovered store switched off.
func (b *Breaker) Done(now time.Time, probe bool, err error) {
	if err == nil && !probe && !b.troubled() {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open {
		if !probe {
			return
		}
		b.probing = false
		if err == nil {
			b.open, b.fails = false, 0
			b.isOpen.Store(false)
			b.failing.Store(false)
			b.logger.Info("stampede: store recovered, circuit breaker closed", "cache", b.name)
			return
		}
		b.until = now.Add(b.base)
		b.untilNs.Store(b.until.UnixNano())
		return
	}
	if err == nil {
		b.fails = 0
		b.failing.Store(false)
		return
	}
	b.fails++
	if b.fails == 1 {
		b.first = now
	}
	b.failing.Store(true)
	if b.fails >= b.threshold && now.Sub(b.first) >= MinFailingSpan {
		b.open = true
		b.isOpen.Store(true)
		b.until = now.Add(b.base)
		b.untilNs.Store(b.until.UnixNano())
		b.trips++
		b.logger.Warn("stampede: store failing, circuit breaker open: requests go to the handler",
			"cache", b.name, "consecutive_failures", b.fails, "backoff", b.base, "error", err)
	}
}

// Abandon hands back a call's token when its outcome says nothing about the store (the caller left).
func (b *Breaker) Abandon(probe bool) {
	if !probe {
		return
	}
	b.mu.Lock()
	b.probing = false
	b.mu.Unlock()
}

// State reports whether the breaker is open and how often it opened.
func (b *Breaker) State() (open bool, trips uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open, b.trips
}
