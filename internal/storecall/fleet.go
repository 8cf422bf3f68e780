package storecall

import (
	"context"
	"time"
)

// Outcomes a lease holder announces when it releases the lease (stampede's LeaseStore).
const (
	OutcomeStored = "stored" // the entry is in the store: read it
	OutcomePass   = "pass"   // the response may not be shared: every replica runs its own handler
	OutcomeMiss   = "miss"   // nothing was stored (not storable, failed write, panic): try the lease again
)

// Leaser is the lease part of stampede's LeaseStore.
type Leaser interface {
	TryLease(ctx context.Context, key string, lease time.Duration) (token string, held bool, err error)
	Release(ctx context.Context, key, token, outcome string) error
	WaitRelease(ctx context.Context, key string) (outcome string, err error)
}

// Fencer is stampede's FencedStore: tickets, fenced writes, invalidations that revoke them.
type Fencer interface {
	Ticket(ctx context.Context, key string, ttl time.Duration) (ticket string, err error)
	SetFenced(ctx context.Context, key, ticket, writeKey string, value []byte, ttl time.Duration, tags []string) (stored bool, err error)
	Invalidate(ctx context.Context, key string) error
}

// Lead is what a flight holds to write to a shared store: a lease (fleet coalescing) or a ticket, or
// nothing.
type Lead struct {
	Key    string // the key the token is for
	Token  string // the lease token or the ticket; "" when the flight holds neither
	Leased bool   // Token is a lease: it must be released with an outcome
	// Until is, for a lease, the earliest it can expire: when it was asked for plus its duration (the
	// store starts it later). A write refused before then was fenced by an invalidation, not by expiry.
	Until time.Time
}

// Expired reports whether ld is a lease that may have expired by now: a fenced write it made that was
// refused then is worth a warning (the run took longer than the lease), while one refused earlier was
// revoked by an invalidation, as it should be.
func (ld Lead) Expired() bool { return ld.Leased && !time.Now().Before(ld.Until) }

// FleetResult is what the fleet step of a flight decided.
type FleetResult uint8

const (
	// FleetRun: run the flight here; Lead says what it holds (a lease, or nothing when the store
	// could not give one: per-process coalescing).
	FleetRun FleetResult = iota
	// FleetServed: another replica's stored value was found (serve said so): do not run.
	FleetServed
	// FleetPass: the holder announced that the response may not be shared: run here without a lease,
	// and treat the key as pass.
	FleetPass
	// FleetFailed: the store did not answer (or the breaker skipped it): run here without a lease, and
	// make no further store call before the run (no ticket: the run does not write), so that a sick
	// store costs the flight one store timeout at most.
	FleetFailed
)

// ServeResult is what the fleet step's read (Fleet's serve) found.
type ServeResult uint8

const (
	ServeNone   ServeResult = iota // nothing fresh: run
	ServeDone                      // a fresh value was found and published: do not run
	ServeFailed                    // the store did not answer: run, with no further store call
)

// Fleet is the fleet step of a flight (stampede's WithFleetCoalescing), the same for every front-end:
// take key's lease; when another replica holds it, wait for its release and let serve read what it
// stored; when the lease is lost twice, or the store fails (FleetFailed), run without a lease rather
// than wait again. serve reads the store for a fresh value and publishes it (ServeDone), finds none
// (ServeNone) or could not read (ServeFailed: FleetFailed when it waited, the lease is kept when held);
// it is called after the lease is taken too, since another replica may have stored the value between
// this process's look-up and its lease. ctx bounds the whole step (the lease plus a store timeout).
func (c *Calls) Fleet(ctx context.Context, l Leaser, key string, lease time.Duration, serve func(context.Context) ServeResult) (Lead, FleetResult) {
	for try := range 2 {
		asked := time.Now()
		token, held, ok := c.tryLease(ctx, l, key, lease)
		switch {
		case !ok:
			return Lead{}, FleetFailed // the store failed or the breaker is open: per-process coalescing
		case held:
			ld := Lead{Key: key, Token: token, Leased: true, Until: asked.Add(lease)}
			if serve(ctx) == ServeDone {
				c.Release(l, ld, OutcomeStored)
				return Lead{}, FleetServed
			}
			return ld, FleetRun
		case try == 1:
			return Lead{}, FleetRun // lost the lease twice: run without one rather than wait again
		}
		outcome, err := l.WaitRelease(ctx, key)
		switch {
		case err != nil:
			return Lead{}, FleetFailed
		case outcome == OutcomePass:
			return Lead{}, FleetPass
		}
		switch serve(ctx) {
		case ServeDone:
			return Lead{}, FleetServed
		case ServeFailed:
			return Lead{}, FleetFailed // no second lease, no ticket: one store timeout at most
		}
	}
	return Lead{}, FleetRun
}

// tryLease asks for key's lease through the breaker; ok is false when the store could not answer.
func (c *Calls) tryLease(ctx context.Context, l Leaser, key string, lease time.Duration) (token string, held, ok bool) {
	allowed, probe := c.Begin()
	if !allowed {
		return "", false, false
	}
	start := c.now()
	sctx, bound := c.Ctx(ctx)
	token, held, err := l.TryLease(sctx, key, lease)
	bound.Release()
	c.observe(ctx, "lease", start, err)
	c.EndRead(ctx, probe, err)
	if err != nil {
		c.cfg.Logger.Debug("stampede: fleet lease failed, coalescing in this process only", "cache", c.cfg.Name, "error", err)
		return "", false, false
	}
	return token, held, true
}

// Release gives up ld's lease, announcing outcome; a Lead without a lease releases nothing. An error only
// delays the other replicas until the lease expires.
func (c *Calls) Release(l Leaser, ld Lead, outcome string) {
	if !ld.Leased || l == nil {
		return
	}
	ctx, bound := c.Ctx(context.Background())
	defer bound.Release()
	if err := l.Release(ctx, ld.Key, ld.Token, outcome); err != nil {
		c.cfg.Logger.Debug("stampede: lease release failed", "cache", c.cfg.Name, "error", err)
	}
}

// Ticket takes a ticket for key (see stampede's FencedStore), valid for ttl; ok is false when the store
// could not give one, and the flight must then not write to the shared store (a write it could not
// fence might land after an invalidation).
func (c *Calls) Ticket(ctx context.Context, f Fencer, key string, ttl time.Duration) (Lead, bool) {
	allowed, probe := c.Begin()
	if !allowed {
		return Lead{}, false
	}
	start := c.now()
	sctx, bound := c.Ctx(ctx)
	ticket, err := f.Ticket(sctx, key, ttl)
	bound.Release()
	c.observe(ctx, "ticket", start, err)
	c.EndRead(ctx, probe, err)
	if err != nil {
		c.cfg.Logger.Debug("stampede: store ticket failed, the value will not be stored", "cache", c.cfg.Name, "error", err)
		return Lead{}, false
	}
	return Lead{Key: key, Token: ticket}, true
}
