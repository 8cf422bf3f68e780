package stampede

import (
	"sync"
	"time"
)

// doorkeeper admits a key to the store only once it has been requested minUses times within window
// (nginx's proxy_cache_min_uses, cacheme's doorkeeper), so one-hit wonders do not evict hot entries.
// Responses for keys not yet admitted are still coalesced and shared with concurrent waiters.
//
// Its memory is fixed, whatever the number of distinct keys a client sends (doorBytes, 1 MiB): uses are
// counted in count-min sketches of saturating 8-bit counters, per shard, in two generations that turn
// over every window; a key's count is the sum of both, so every use within the last window counts (and
// some up to two windows old). Counters shared with other keys only ever over-count: a flood of
// distinct keys (beyond some 100,000 a window) makes the doorkeeper admit keys early, never late, and
// the store's own budget still bounds what that stores.
type doorkeeper struct {
	minUses int
	window  time.Duration
	shards  [numShards]doorShard
}

const (
	doorRows  = 4    // independent counters per key (count-min depth)
	doorWidth = 2048 // counters per row per shard: 64 shards × 2 generations × 4 × 2048 bytes = 1 MiB
	doorBytes = numShards * 2 * doorRows * doorWidth
)

type doorShard struct {
	mu     sync.Mutex
	cur    *doorSketch // counts since turned; guarded by mu; nil until the shard's first use
	prev   *doorSketch // counts of the window before; guarded by mu
	turned time.Time   // when cur started; guarded by mu
}

type doorSketch [doorRows][doorWidth]uint8

// doorSlots returns the counter of k in each row: 11 bits of its id per row (ids are SHA-256 bits, and the
// shard is taken from bits 56 and up).
func doorSlots(id uint64) (s [doorRows]uint16) {
	for i := range s {
		s[i] = uint16(id>>(11*i)) % doorWidth
	}
	return s
}

// use records one request for k at now and reports whether k has now been requested often enough.
func (d *doorkeeper) use(k key, now time.Time) bool {
	s := &d.shards[k.shard]
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.cur == nil:
		s.cur, s.prev, s.turned = new(doorSketch), new(doorSketch), now
	case now.Sub(s.turned) >= 2*d.window:
		*s.cur, *s.prev = doorSketch{}, doorSketch{}
		s.turned = now
	case now.Sub(s.turned) >= d.window:
		s.cur, s.prev = s.prev, s.cur
		*s.cur = doorSketch{}
		s.turned = now
	}
	slots := doorSlots(k.id)
	// Conservative update: only the smallest counters grow, so keys sharing some counters over-count
	// less.
	low := uint8(255)
	for i, j := range slots {
		low = min(low, s.cur[i][j])
	}
	for i, j := range slots {
		if s.cur[i][j] == low && low < 255 {
			s.cur[i][j]++
		}
	}
	uses := 255
	for i, j := range slots {
		uses = min(uses, int(s.cur[i][j])+int(s.prev[i][j]))
	}
	return uses >= d.minUses
}
