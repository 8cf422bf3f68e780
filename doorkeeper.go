package stampede

import (
	"sync"
	"time"
)

// doorkeeper admits a key to the store only once it has been requested minUses times within window
// (nginx's proxy_cache_min_uses, cacheme's doorkeeper), so one-hit wonders do not evict hot entries.
// Responses for keys not yet admitted are still coalesced and shared with concurrent waiters.
type doorkeeper struct {
	minUses int
	window  time.Duration
	shards  [numShards]doorShard
}

type doorShard struct {
	mu   sync.Mutex
	seen map[string]*sighting // guarded by mu
}

type sighting struct {
	first time.Time
	uses  int
}

// doorSweepAt is the shard size at which recording a use first drops sightings whose window is over,
// bounding memory by the rate of distinct keys times the window.
const doorSweepAt = 4096

// use records one request for k at now and reports whether k has now been requested often enough.
func (d *doorkeeper) use(k key, now time.Time) bool {
	s := &d.shards[k.shard]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = make(map[string]*sighting)
	}
	if len(s.seen) >= doorSweepAt {
		for key, v := range s.seen {
			if now.Sub(v.first) >= d.window {
				delete(s.seen, key)
			}
		}
	}
	v := s.seen[k.s]
	if v == nil || now.Sub(v.first) >= d.window {
		v = &sighting{first: now}
		s.seen[k.s] = v
	}
	v.uses++
	return v.uses >= d.minUses
}
