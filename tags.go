package stampede

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Bounds on tags, so that a handler cannot make the index grow without limit.
const (
	maxTagsPerResponse = 32
	maxTagLen          = 256
	maxTaggedKeys      = 100_000 // (tag, key) pairs in the in-process index
)

// responseTags returns the tags of a response: the values of Cache-Tag and Surrogate-Key, separated
// by spaces or commas, without duplicates. ok is false when the response carries more than
// maxTagsPerResponse distinct tags or one longer than maxTagLen bytes: such a response cannot be indexed
// under all its tags, and is not stored (a stored entry that PurgeTag of one of its tags would miss
// must never exist).
func responseTags(h http.Header) (tags []string, ok bool) {
	for _, name := range [...]string{"Cache-Tag", "Surrogate-Key"} {
		for _, v := range h[name] {
			for _, t := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
				if contains(tags, t) {
					continue
				}
				if len(t) > maxTagLen || len(tags) == maxTagsPerResponse {
					return nil, false
				}
				tags = append(tags, t)
			}
		}
	}
	return tags, true
}

// tagsUnindexable logs that a response is not stored because it carries tags that cannot all be
// indexed (see responseTags).
func (c *Cache) tagsUnindexable() {
	c.stats.logs.log(context.Background(), c.logger, logTagIndexFull, slog.LevelWarn,
		"stampede: response carries more tags than can be indexed; not stored", "cache", c.cfg.name,
		"max_tags", maxTagsPerResponse, "max_tag_len", maxTagLen)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// indexTagsLocal records, before the response is stored, its tags in the in-process index of a store
// that keeps none; it reports false when the index is full, and the response must then not be stored:
// an entry PurgeTag cannot find would outlive a purge. With a store that keeps its own index there is
// nothing to do before the write. seq, unless 0, is what the index's settle takes once the writes of
// keys have succeeded.
func (c *Cache) indexTagsLocal(tags, keys []string, ttl time.Duration) (seq uint64, ok bool) {
	if c.tags == nil || len(tags) == 0 {
		return 0, true
	}
	now := c.cfg.clock()
	if seq, ok := c.tags.addOrPrune(tags, keys, now.Add(ttl), now); ok {
		return seq, true
	}
	c.stats.setErrors.Add(1)
	c.stats.logs.log(context.Background(), c.logger, logTagIndexFull, slog.LevelWarn,
		"stampede: tag index full; tagged response not stored", "cache", c.cfg.name, "pairs", c.tags.max)
	return 0, false
}

// indexTagsStore records the tags of a stored response under keys in a store that keeps the tag index
// (backends/redisstore). When that fails the entries are deleted again, so that no entry PurgeTag
// cannot find is left behind; it reports whether the index write succeeded.
func (c *Cache) indexTagsStore(tags, keys []string, ttl time.Duration) bool {
	if c.tagged == nil || len(tags) == 0 {
		return true
	}
	for _, k := range keys {
		_, err := c.calls.Write("tag", func(ctx context.Context) (bool, error) {
			return true, c.tagged.TagKeys(ctx, k, tags, ttl)
		})
		if err != nil {
			c.stats.logs.log(context.Background(), c.logger, logTagIndexWrite, slog.LevelWarn,
				"stampede: tag index write failed; the entry is removed", "cache", c.cfg.name, "error", err)
			for _, k := range keys {
				_ = c.PurgeKey(context.Background(), k)
			}
			return false
		}
	}
	return true
}

// tagIndex maps tags to the store keys of the entries that carry them, for stores that keep no tag
// index. It holds at most max (tag, key) pairs, about 250 bytes each (maxTaggedKeys: some 25 MiB at
// most, measured by TestTagIndexMemory). Adding costs O(log n) per pair: pairs whose entry has expired
// are dropped in expiry order from a heap, never by scanning the whole index.
//
// With a store that says which keys it still holds (holds, from a HoldingStore), a full index first
// drops the pairs of entries the store evicted (prune), at most once per pruneEvery. Only pairs whose
// write succeeded (settle) are dropped: a pair is added before its entry is written, and the store does
// not hold the entry yet while that write is on its way (nor, for a write that failed, may it ever be
// known whether it landed). holds is trusted only once it has said yes for an entry just written: a
// wrapper that promotes a memory store's Holds but changes its keys would say no for every entry, and
// pruning on its word would lose the pairs of live entries.
type tagIndex struct {
	mu       sync.Mutex
	tags     map[string]map[string]tagEntry // tag -> key -> its pair; guarded by mu
	n        int                            // pairs in tags; guarded by mu
	expiry   pairHeap                       // every pair added, soonest expiry first; guarded by mu
	max      int
	seq      uint64                // guarded by mu
	holds    func(key string) bool // nil: the store cannot say, nothing is pruned
	trusted  bool                  // holds said yes for an entry just written; guarded by mu
	prunedAt int64                 // Unix nanoseconds of the last prune; guarded by mu
}

// pruneEvery bounds how often a full index scans its pairs for evicted entries: a store that still holds
// them all leaves the index full, and a scan per tagged write would cost O(pairs) each.
const pruneEvery = time.Second

// tagEntry is one recorded (tag, key) pair: its expiry, and when it was last added, by seq; a purge
// forgets only the pairs it saw (see keys, forget), not one added again since. settled says the write
// that added it last has ended (settle), so that prune may drop it once the store no longer holds key.
type tagEntry struct {
	expires int64  // Unix nanoseconds
	seq     uint64 // the sequence number of the add, shifted left one bit; the low bit is settled
}

func (e tagEntry) addedAt() uint64 { return e.seq >> 1 }
func (e tagEntry) settled() bool   { return e.seq&1 != 0 }

// tagPair is one (tag, key) pair with the expiry it was added with.
type tagPair struct {
	tag, key string
	expires  int64 // Unix nanoseconds
}

// pairHeap is a min-heap of pairs by expiry.
type pairHeap []tagPair

func (h pairHeap) less(i, j int) bool { return h[i].expires < h[j].expires }

func (h *pairHeap) push(p tagPair) {
	*h = append(*h, p)
	s := *h
	for i := len(s) - 1; i > 0; {
		parent := (i - 1) / 2
		if !s.less(i, parent) {
			break
		}
		s[i], s[parent] = s[parent], s[i]
		i = parent
	}
}

func (h *pairHeap) pop() tagPair {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s[last] = tagPair{}
	s = s[:last]
	for i := 0; ; {
		l, r, small := 2*i+1, 2*i+2, i
		if l < len(s) && s.less(l, small) {
			small = l
		}
		if r < len(s) && s.less(r, small) {
			small = r
		}
		if small == i {
			break
		}
		s[i], s[small] = s[small], s[i]
		i = small
	}
	*h = s
	return top
}

func newTagIndex(max int, holds func(key string) bool) *tagIndex {
	return &tagIndex{tags: map[string]map[string]tagEntry{}, max: max, holds: holds}
}

// addOrPrune is add, and when the pairs do not fit, prune and add again.
func (t *tagIndex) addOrPrune(tags, keys []string, expiresAt, nowAt time.Time) (uint64, bool) {
	if seq, ok := t.add(tags, keys, expiresAt, nowAt); ok || !t.prune(nowAt.UnixNano()) {
		return seq, ok
	}
	return t.add(tags, keys, expiresAt, nowAt)
}

// add records every (tag, key) pair until expires, first dropping the pairs that expired by now. It
// reports false, and records nothing, when the pairs do not fit; otherwise it returns the sequence
// number settle takes once the write has succeeded.
func (t *tagIndex) add(tags, keys []string, expiresAt, nowAt time.Time) (uint64, bool) {
	expires, now := expiresAt.UnixNano(), nowAt.UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	for len(t.expiry) > 0 && t.expiry[0].expires <= now {
		p := t.expiry.pop()
		if ks := t.tags[p.tag]; ks != nil && ks[p.key].expires == p.expires { // a missing key's is 0
			delete(ks, p.key)
			t.n--
			if len(ks) == 0 {
				delete(t.tags, p.tag)
			}
		}
	}
	added := 0
	for _, tag := range tags {
		for _, k := range keys {
			if _, ok := t.tags[tag][k]; !ok {
				added++
			}
		}
	}
	if t.n+added > t.max {
		return 0, false
	}
	t.seq++
	for _, tag := range tags {
		ks := t.tags[tag]
		if ks == nil {
			ks = map[string]tagEntry{}
			t.tags[tag] = ks
		}
		for _, k := range keys {
			e, ok := ks[k]
			if !ok {
				t.n++
			}
			e.seq = t.seq << 1 // not settled
			if expires > e.expires {
				e.expires = expires
				t.expiry.push(tagPair{tag: tag, key: k, expires: expires})
			}
			ks[k] = e
		}
	}
	if len(t.expiry) > 2*t.max+1024 {
		t.compact() // pairs taken by PurgeTag or extended left stale heap entries behind
	}
	return t.seq, true
}

// settle marks the pairs that add recorded with sequence number seq as written: the writes of their
// entries succeeded. A pair added again since is left as it is. Until holds is trusted, it is asked
// about the first key just written.
func (t *tagIndex) settle(tags, keys []string, seq uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.holds != nil && !t.trusted && len(keys) > 0 && t.holds(keys[0]) {
		t.trusted = true
	}
	for _, tag := range tags {
		ks := t.tags[tag]
		for _, k := range keys {
			if e, ok := ks[k]; ok && e.addedAt() == seq {
				e.seq |= 1
				ks[k] = e
			}
		}
	}
}

// prune drops the settled pairs of the keys the store no longer holds, unless holds is not trusted or
// the index was pruned less than pruneEvery ago; it reports whether it looked. The store is asked
// without mu held (a scan of a full index asks it 100,000 times), and a pair is dropped only if it is
// still the one seen then (a write of its key since re-added it, unsettled). Dropped pairs' heap entries
// stay until popped or compacted (a missing pair's are skipped).
func (t *tagIndex) prune(now int64) bool {
	type seen struct {
		tag string
		seq uint64
	}
	t.mu.Lock()
	if t.holds == nil || !t.trusted || now-t.prunedAt < int64(pruneEvery) {
		t.mu.Unlock()
		return false
	}
	t.prunedAt = now
	candidates := make(map[string][]seen, t.n)
	for tag, ks := range t.tags {
		for k, e := range ks {
			if e.settled() {
				candidates[k] = append(candidates[k], seen{tag, e.seq})
			}
		}
	}
	t.mu.Unlock()

	var gone []string
	for k := range candidates {
		if !t.holds(k) {
			gone = append(gone, k)
		}
	}
	if len(gone) == 0 {
		return true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range gone {
		for _, p := range candidates[k] {
			ks := t.tags[p.tag]
			if e, ok := ks[k]; ok && e.seq == p.seq {
				delete(ks, k)
				t.n--
				if len(ks) == 0 {
					delete(t.tags, p.tag)
				}
			}
		}
	}
	return true
}

// compact rebuilds the heap from the live pairs. mu must be held.
func (t *tagIndex) compact() {
	clear(t.expiry)
	t.expiry = t.expiry[:0]
	for tag, ks := range t.tags {
		for k, e := range ks {
			t.expiry.push(tagPair{tag: tag, key: k, expires: e.expires})
		}
	}
}

// take removes tag and returns its keys.
func (t *tagIndex) take(tag string) []string {
	keys, at := t.keys(tag)
	t.forget(tag, keys, at)
	return keys
}

// keys returns the keys recorded under tag, leaving them there, and the index's sequence number: a
// purge deletes them first and forgets them after (forget), so that a purge of the same tag running
// meanwhile finds them too and does not return before they are gone.
func (t *tagIndex) keys(tag string) ([]string, uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ks := t.tags[tag]
	keys := make([]string, 0, len(ks))
	for k := range ks {
		keys = append(keys, k)
	}
	return keys, t.seq
}

// forget removes keys from tag's record unless one was added again after sequence number at (its new
// entry is not the one the purge deleted).
func (t *tagIndex) forget(tag string, keys []string, at uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ks := t.tags[tag]
	for _, k := range keys {
		if e, ok := ks[k]; ok && e.addedAt() <= at {
			delete(ks, k)
			t.n--
		}
	}
	if len(ks) == 0 {
		delete(t.tags, tag)
	}
}
