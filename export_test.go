package stampede

import (
	"net/http"
	"time"
)

// SetJoinHook makes c call fn each time a request starts waiting on another request's run.
func SetJoinHook(c *Cache, fn func()) { c.onJoin = fn }

// StoreKey returns the store key c computes for r ("" when r passes through).
func StoreKey(c *Cache, r *http.Request) string {
	k, _, reason := c.key(r)
	if reason != "" {
		return ""
	}
	return k.s
}

// NewTagIndex, TagIndexAdd and TagIndexTake expose the in-process tag index.
func NewTagIndex(max int) *tagIndex { return newTagIndex(max, nil) }

func TagIndexAdd(t *tagIndex, tags, keys []string, expires, now time.Time) bool {
	_, ok := t.add(tags, keys, expires, now)
	return ok
}

// NewHoldingTagIndex is NewTagIndex over a store that says which keys it holds; TagIndexAddSeq and
// TagIndexSettle are add and settle.
func NewHoldingTagIndex(max int, holds func(string) bool) *tagIndex { return newTagIndex(max, holds) }

func TagIndexAddSeq(t *tagIndex, tags, keys []string, expires, now time.Time) (uint64, bool) {
	return t.addOrPrune(tags, keys, expires, now)
}

func TagIndexSettle(t *tagIndex, tags, keys []string, seq uint64) { t.settle(tags, keys, seq) }

// SetTagIndexMax bounds c's in-process tag index to max pairs (it must be empty).
func SetTagIndexMax(c *Cache, max int) { c.tags.max = max }

func TagIndexTake(t *tagIndex, tag string) []string { return t.take(tag) }

// CacheTagIndex returns c's in-process tag index.
func CacheTagIndex(c *Cache) *tagIndex { return c.tags }
