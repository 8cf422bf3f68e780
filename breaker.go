package stampede

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// maxBreakerBackoff caps the doubling back-off of a store that keeps failing its probes.
const maxBreakerBackoff = 30 * time.Second

// breaker skips a store that keeps failing (SPEC §7.1), so a dead or slow store costs requests nothing
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

	mu      sync.Mutex
	fails   int           // consecutive failures; guarded by mu
	open    bool          // guarded by mu
	until   time.Time     // while open, calls before this are skipped; guarded by mu
	backoff time.Duration // current open window; guarded by mu
	probing bool          // a probe is in flight; guarded by mu
	trips   uint64        // times it opened; guarded by mu
}

// allow reports whether a store call may be made at now. While open it lets exactly one probe through
// once the back-off has passed.
func (b *breaker) allow(now time.Time) bool {
	if !b.isOpen.Load() {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open {
		return true
	}
	if b.probing || now.Before(b.until) {
		return false
	}
	b.probing = true
	return true
}

// done records the outcome of a call that allow let through.
func (b *breaker) done(now time.Time, err error) {
	if err == nil && !b.failing.Load() && !b.isOpen.Load() {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil {
		b.fails = 0
		b.failing.Store(false)
		if b.open {
			b.open, b.probing = false, false
			b.isOpen.Store(false)
			b.logger.Info("stampede: store recovered, circuit breaker closed", "cache", b.name)
		}
		return
	}
	if b.open {
		b.probing = false
		b.backoff = min(2*b.backoff, maxBreakerBackoff)
		b.until = now.Add(b.backoff)
		return
	}
	b.fails++
	b.failing.Store(true)
	if b.fails >= b.threshold {
		b.open = true
		b.isOpen.Store(true)
		b.backoff = b.base
		b.until = now.Add(b.backoff)
		b.trips++
		b.logger.Warn("stampede: store failing, circuit breaker open: requests go to the handler",
			"cache", b.name, "consecutive_failures", b.fails, "backoff", b.backoff, "error", err)
	}
}

// state reports whether the breaker is open and how often it opened.
func (b *breaker) state() (open bool, trips uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open, b.trips
}
