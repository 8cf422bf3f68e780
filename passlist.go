package stampede

import (
	"sync"
	"sync/atomic"
	"time"
)

// passList remembers keys whose responses could not be shared, so that for a short window their requests
// go straight to the handler instead of queueing behind one another (Varnish's hit-for-pass).
type passList struct {
	ttl    time.Duration
	n      atomic.Int64 // entries in all shards, read without locks to skip them when empty
	shards [numShards]passShard
}

type passShard struct {
	mu    sync.Mutex
	until map[string]time.Time // guarded by mu; key -> end of its pass window
}

// sweepAt is the shard size at which adding an entry first drops the expired ones, bounding memory by
// the rate of unshareable keys times the window.
const sweepAt = 1024

// has reports whether k is inside a pass window at now.
func (p *passList) has(k key, now time.Time) bool {
	if p.n.Load() == 0 {
		return false
	}
	s := &p.shards[k.shard]
	s.mu.Lock()
	defer s.mu.Unlock()
	until, ok := s.until[k.s]
	if !ok {
		return false
	}
	if now.Before(until) {
		return true
	}
	delete(s.until, k.s)
	p.n.Add(-1)
	return false
}

// add opens (or extends) a pass window for k.
func (p *passList) add(k key, now time.Time) {
	if p.ttl <= 0 {
		return
	}
	s := &p.shards[k.shard]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.until == nil {
		s.until = make(map[string]time.Time)
	}
	if len(s.until) >= sweepAt {
		for k, until := range s.until {
			if !now.Before(until) {
				delete(s.until, k)
				p.n.Add(-1)
			}
		}
	}
	if _, ok := s.until[k.s]; !ok {
		p.n.Add(1)
	}
	s.until[k.s] = now.Add(p.ttl)
}

// remove ends k's pass window, when a later response for it turned out shareable.
func (p *passList) remove(k key) {
	if p.n.Load() == 0 {
		return
	}
	s := &p.shards[k.shard]
	s.mu.Lock()
	if _, ok := s.until[k.s]; ok {
		delete(s.until, k.s)
		p.n.Add(-1)
	}
	s.mu.Unlock()
}
