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
	until map[string]time.Time // guarded by mu; key -> end of its pass window; at most passPerShard
	swept time.Time            // when add last dropped the expired entries; guarded by mu
}

// passPerShard bounds each shard: 64 × 512 = 32,768 keys in pass windows at most, about 4 MiB
// (measured by TestFloodBookkeeping). A shard that is full drops its expired entries (at most once a
// tenth of the window, so a flood does not scan it on every add) and then, if still full, an arbitrary
// entry: a key that loses its window early only makes its next requests coalesce again, as before it
// was first seen unshareable.
const passPerShard = 512

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
	if _, ok := s.until[k.s]; !ok {
		if len(s.until) >= passPerShard && now.Sub(s.swept) >= p.ttl/10 {
			s.swept = now
			for k, until := range s.until {
				if !now.Before(until) {
					delete(s.until, k)
					p.n.Add(-1)
				}
			}
		}
		if len(s.until) >= passPerShard {
			for k := range s.until {
				delete(s.until, k)
				p.n.Add(-1)
				break
			}
		}
		p.n.Add(1)
	}
	s.until[k.s] = now.Add(p.ttl)
}
