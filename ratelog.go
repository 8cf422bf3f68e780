package stampede

import (
	"context"
	"log/slog"
	"runtime"
	"sync/atomic"
	"time"
)

// logInterval is how often a Cache or a Loader writes a line of one repeatable kind at most: the
// lines of that kind in between are dropped and counted, and the next line written carries
// suppressed=N, the number dropped since the previous one (docs/behaviour.md §10.3).
const logInterval = 10 * time.Second

// logKind is a warning or error that clients can trigger, or that repeats for as long as a store or a
// handler misbehaves, so each is rate-limited on its own (see [logLimiter]). Lines not listed here are
// written every time: the circuit breaker's (one per state change, at most one per back-off), the
// "stored value does not decode" warning (once per loader), and the per-request debug lines.
type logKind uint8

const (
	logKeyFunc       logKind = iota // "key function failed, request not cached": one per request, clients control the rate
	logUnusableEntry                // "unusable stored entry, treated as a miss and removed"
	logTagIndexFull                 // "tag index full; tagged response not stored"
	logTagIndexWrite                // "tag index write failed; the entry is removed"
	logLeaseExpired                 // "lease expired before the response (value) was stored"
	logStorePanic                   // "store panicked on write"
	logStaleOnPanic                 // "handler panicked; serving the stale entry (stale-if-error)"
	logRefreshPanic                 // "background refresh panicked"
	logLoadPanic                    // "load panicked", when the call that started it stopped waiting
	logBatchPanic                   // "batch load panicked", likewise
	numLogKinds
)

// logLimiter rate-limits the repeatable log lines of one Cache or Loader: per kind, at most one line
// per logInterval. It takes no lock and starts no goroutine: a line is written by the call that moves
// its kind's deadline forward with a compare-and-swap; a call that finds the deadline ahead, or loses
// the swap, only counts itself. The zero value is ready to use.
type logLimiter struct {
	kinds [numLogKinds]logSlot
	// now, when set (by tests), replaces the monotonic clock. It is not the cache's WithClock clock: a
	// test that moves that clock must not also decide which warnings are written.
	now func() time.Duration
}

type logSlot struct {
	next       atomic.Int64  // monotonic ns from which a line of this kind may be written again
	suppressed atomic.Uint64 // lines dropped since the last one written
}

// monoStart anchors the monotonic clock of the limiter: time.Since reads the monotonic clock, which
// no wall-clock step moves.
var monoStart = time.Now()

func (l *logLimiter) clock() int64 {
	if l.now != nil {
		return int64(l.now())
	}
	return int64(time.Since(monoStart))
}

// log writes msg with args at level through logger, unless a line of kind was written less than
// logInterval ago: then the line is only counted, and the next one written says how many were dropped
// (suppressed=N). Nothing is counted while logger does not log level. The line's source is log's caller.
func (l *logLimiter) log(ctx context.Context, logger *slog.Logger, kind logKind, level slog.Level, msg string, args ...any) {
	if !logger.Enabled(ctx, level) {
		return
	}
	s := &l.kinds[kind]
	now := l.clock()
	next := s.next.Load()
	// A deadline more than an interval ahead was set by another clock: a testing/synctest bubble's
	// fake time reads as long before monoStart. It counts as passed, so no kind is silenced for good.
	wait := now < next && next-now <= int64(logInterval)
	if wait || !s.next.CompareAndSwap(next, now+int64(logInterval)) {
		s.suppressed.Add(1)
		return
	}
	var pcs [1]uintptr
	runtime.Callers(2, pcs[:]) // skip Callers and log, as slog.Logger's own methods do for theirs
	r := slog.NewRecord(time.Now(), level, msg, pcs[0])
	r.Add(args...)
	if n := s.suppressed.Swap(0); n > 0 {
		r.AddAttrs(slog.Uint64("suppressed", n))
	}
	_ = logger.Handler().Handle(ctx, r)
}
