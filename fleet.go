package stampede

import (
	"context"
	"net/http"
	"sync/atomic"

	"github.com/seed-a1426414/stampede/internal/entry"
)

// Outcomes a lease holder announces when it releases the lease.
const (
	fleetStored = "stored" // the entry is in the store: read it
	fleetPass   = "pass"   // the response may not be shared: every replica runs its own handler
	fleetMiss   = "miss"   // nothing was stored (not storable, failed write, panic): try the lease again
)

// fleetLease is the lease this process's leader holds on its key while it runs the handler.
type fleetLease struct {
	key      string
	token    string
	handed   atomic.Bool // the run's persist work took charge of releasing it
	released atomic.Bool
}

// fleetLead is the fleet step of a run (see [WithFleetCoalescing]), made before the handler runs. It
// returns served when another replica's stored response was replayed to w and published to f's
// waiters, so the handler must not run; otherwise the lease this process now holds (nil when none: run
// without one, as a per-process leader). Store errors and timeouts only ever lead to the latter.
func (c *Cache) fleetLead(f *flight[*outcome], w http.ResponseWriter, r *http.Request, o runOpts) (l *fleetLease, served bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), c.cfg.fleetLease+c.cfg.storeTimeout)
	defer cancel()
	detached := r.WithContext(ctx)
	for try := range 2 {
		token, held, ok := c.tryLease(ctx, o.k)
		switch {
		case !ok:
			return nil, false // the store failed or the breaker is open: per-process coalescing
		case held:
			l = &fleetLease{key: o.k.s, token: token}
			// Another replica may have stored the response between this process's look-up and the lease.
			if c.fleetServe(f, w, detached, o) {
				c.fleetRelease(l, fleetStored)
				return nil, true
			}
			return l, false
		case try == 1:
			return nil, false // lost the lease twice: run without one rather than wait again
		}
		outcome, err := c.fleet.WaitRelease(ctx, o.k.s)
		if err != nil {
			return nil, false
		}
		if outcome == fleetPass {
			c.pass.add(o.k, c.cfg.clock())
			return nil, false
		}
		if c.fleetServe(f, w, detached, o) {
			return nil, true
		}
	}
	return nil, false
}

// tryLease asks for o.k's lease through the breaker; ok is false when the store could not answer.
func (c *Cache) tryLease(ctx context.Context, k key) (token string, held, ok bool) {
	allowed, probe := c.breaker.allow(c.cfg.clock())
	if !allowed {
		return "", false, false
	}
	sctx, cancel := c.storeCtx(ctx)
	token, held, err := c.fleet.TryLease(sctx, k.s, c.cfg.fleetLease)
	cancel()
	c.breaker.done(c.cfg.clock(), probe, err)
	if err != nil {
		c.stats.getErrors.Add(1)
		c.logger.Debug("stampede: fleet lease failed, coalescing in this process only", "cache", c.cfg.name, "error", err)
		return "", false, false
	}
	return token, held, true
}

// fleetServe looks in the store for a fresh entry for r (following a Vary index); when there is one it
// publishes it to f's waiters and replays it to w.
func (c *Cache) fleetServe(f *flight[*outcome], w http.ResponseWriter, r *http.Request, o runOpts) bool {
	if c.serveFresh(f, w, r, o, "fleet-coalesced") {
		c.stats.fleetServed.Add(1)
		return true
	}
	return false
}

// serveFresh looks in the store for a fresh entry for r (following a Vary index); when there is one it
// publishes it to f's waiters and replays it to w, with detail in its Cache-Status.
func (c *Cache) serveFresh(f *flight[*outcome], w http.ResponseWriter, r *http.Request, o runOpts, detail string) bool {
	now := c.cfg.clock()
	k := o.k
	for range 2 {
		v, found, variant, _ := c.lookup(r, k, o.anonAuth, now)
		switch {
		case found == lookupVariant:
			k = variant
			continue
		case found != lookupEntry || v.Flags&entry.FlagNoCache != 0 || !now.Before(v.FreshUntil()):
			return false
		}
		d := delivery{xcache: xCacheHit, params: statusHit + "; detail=" + detail, fromStore: true, now: now}
		out := &outcome{rec: newCompleteRecording(v), d: d}
		c.flights.run(f, func() (*outcome, func()) { return out, nil })
		c.stats.hits.Add(1)
		c.logDecision(r.Context(), k.s, "HIT", detail)
		c.replayEntry(w, r, &v, d)
		return true
	}
	return false
}

// fleetRelease gives l up once, announcing outcome. An error only delays the other replicas until the
// lease expires.
func (c *Cache) fleetRelease(l *fleetLease, outcome string) {
	if l == nil || l.released.Swap(true) {
		return
	}
	ctx, cancel := c.storeCtx(context.Background())
	defer cancel()
	if err := c.fleet.Release(ctx, l.key, l.token, outcome); err != nil {
		c.logger.Debug("stampede: lease release failed", "cache", c.cfg.name, "error", err)
	}
}
