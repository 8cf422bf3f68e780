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
func NewTagIndex(max int) *tagIndex { return newTagIndex(max) }

func TagIndexAdd(t *tagIndex, tags, keys []string, expires, now time.Time) bool {
	return t.add(tags, keys, expires, now)
}

func TagIndexTake(t *tagIndex, tag string) []string { return t.take(tag) }

// CacheTagIndex returns c's in-process tag index.
func CacheTagIndex(c *Cache) *tagIndex { return c.tags }
