package stampede

import (
	"net/http"

	"github.com/seed-a1426414/stampede/internal/entry"
	"github.com/seed-a1426414/stampede/internal/flight"
	"github.com/seed-a1426414/stampede/internal/storecall"
)

// fleetServe is the fleet step's read (see [WithFleetCoalescing]): it looks in the store for a fresh
// entry for r that another replica stored (following a Vary index); when there is one it publishes it to
// f's waiters and replays it to w.
func (c *Cache) fleetServe(f *flight.Flight[string, *outcome], w http.ResponseWriter, r *http.Request, o runOpts) storecall.ServeResult {
	res := c.serveFresh(f, w, r, o, "fleet-coalesced")
	if res == storecall.ServeDone {
		c.stats.fleetServed.Add(1)
	}
	return res
}

// serveFresh looks in the store for a fresh entry for r (following a Vary index); when there is one it
// publishes it to f's waiters and replays it to w, with detail in its Cache-Status.
func (c *Cache) serveFresh(f *flight.Flight[string, *outcome], w http.ResponseWriter, r *http.Request, o runOpts, detail string) storecall.ServeResult {
	now := c.cfg.clock()
	k := o.k
	for range 2 {
		v, found, variant, _ := c.lookup(r, k, o.anonAuth, now)
		switch {
		case found == lookupVariant:
			k = variant
			continue
		case found == lookupFailed:
			return storecall.ServeFailed
		case found != lookupEntry || v.Flags&entry.FlagNoCache != 0 || !now.Before(v.FreshUntil()):
			return storecall.ServeNone
		}
		d := delivery{xcache: xCacheHit, params: statusHit + "; detail=" + detail, fromStore: true, now: now}
		out := &outcome{rec: newCompleteRecording(v), d: d}
		c.flights.Run(f, func() (*outcome, func()) { return out, nil })
		c.stats.hits.Add(1)
		c.logDecision(r.Context(), k.s, "HIT", detail)
		c.replayEntry(w, r, &v, d)
		return storecall.ServeDone
	}
	return storecall.ServeNone
}
