package stampede

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// maxBreakerBackoff caps the doubling back-off of a store that keeps failing its probes.
const maxBreakerBackoff = 30 * time.Second

// busyWindow is how many back-offs a store that answered a call counts as busy rather than down.
const busyWindow = 5

// okEvery is how often a success refreshes the breaker's record of the store's last answer: often
// enough to tell a busy store from a dead one, rarely enough to cost a hit one atomic load.
const okEvery = 10 * time.Millisecond

// breaker skips a store that keeps failing (docs/behaviour.md §7.1), so a dead or slow store costs requests nothing
// instead of a timeout each. Closed: every call goes through; after `threshold` consecutive failures it
// opens for `backoff`. Then one call (the probe) goes through: success closes it, failure re-opens it for
// twice as long, up to maxBreakerBackoff. It logs once when it opens and once when it closes.
type breaker struct {
	threshold int
	base      time.Duration
	logger    *slog.Logger
	name      string

	// isOpen and failing mirror open and fails > 0, read without mu so that a healthy store costs
	// every call two atomic loads and no lock.
	isOpen  atomic.Bool
	failing atomic.Bool
	untilNs atomic.Int64 // until, in unix ns, so an open breaker refuses calls without taking mu
	lastOK  atomic.Int64 // unix ns of a recent success, refreshed at most every okEvery

	mu      sync.Mutex
	fails   int           // consecutive failures; guarded by mu
	open    bool          // guarded by mu
	until   time.Time     // while open, calls before this are skipped; guarded by mu
	backoff time.Duration // current open window; guarded by mu
	probing bool          // a probe is in flight; guarded by mu
	trips   uint64        // times it opened; guarded by mu
}

// troubled reports whether the breaker counts failures or is open: a successful call must then be
// recorded. A healthy store costs two atomic loads.
func (b *breaker) troubled() bool { return b.failing.Load() || b.isOpen.Load() }

// allow reports whether a store call may be made at now. While open it lets exactly one call through,
// the probe, once the back-off has passed; probe tells the caller it holds that token and must hand it
// back with done or abandon.
func (b *breaker) allow(now time.Time) (ok, probe bool) {
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

// done records the outcome of a call that allow let through. While the breaker is open only the probe's
// outcome counts: calls that started before it opened and fail afterwards say nothing new, and letting
// them extend the back-off would keep a recovered store switched off.
func (b *breaker) done(now time.Time, probe bool, err error) {
	if err == nil {
		// now is when the caller's request began, which on a process short of CPU can be long ago: the
		// record of the store's last answer takes the clock when it is refreshed (rarely).
		if now.UnixNano()-b.lastOK.Load() > int64(okEvery) {
			b.lastOK.Store(time.Now().UnixNano())
		}
		if !probe && !b.failing.Load() && !b.isOpen.Load() {
			return
		}
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
		b.backoff = min(2*b.backoff, maxBreakerBackoff)
		b.until = now.Add(b.backoff)
		b.untilNs.Store(b.until.UnixNano())
		return
	}
	if err == nil {
		b.fails = 0
		b.failing.Store(false)
		return
	}
	b.fails++
	b.failing.Store(true)
	if b.fails >= b.threshold && time.Now().UnixNano()-b.lastOK.Load() >= int64(busyWindow*b.base) {
		b.open = true
		b.isOpen.Store(true)
		b.backoff = b.base
		b.until = now.Add(b.backoff)
		b.untilNs.Store(b.until.UnixNano())
		b.trips++
		b.logger.Warn("stampede: store failing, circuit breaker open: requests go to the handler",
			"cache", b.name, "consecutive_failures", b.fails, "backoff", b.backoff, "error", err)
	}
}

// answering reports whether the store answered a call recently (within five back-offs): a call that
// failed then is more likely to have met a busy store than a dead one.
func (b *breaker) answering() bool {
	return time.Now().UnixNano()-b.lastOK.Load() < int64(busyWindow*b.base)
}

// abandon hands back a call's token when its outcome says nothing about the store (the client left).
func (b *breaker) abandon(probe bool) {
	if !probe {
		return
	}
	b.mu.Lock()
	b.probing = false
	b.mu.Unlock()
}

// state reports whether the breaker is open and how often it opened.
func (b *breaker) state() (open bool, trips uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open, b.trips
}
