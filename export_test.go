package stampede

import "net/http"

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
