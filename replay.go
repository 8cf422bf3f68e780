package stampede

import (
	"net/http"
	"slices"
	"time"

	"github.com/seed-a1426414/stampede/internal/entry"
)

// replayStored writes a stored entry to w: its status, headers and body (none for HEAD), with Age and
// Cache-Status, or 304 Not Modified when the request's preconditions match the entry's validators.
// params are the Cache-Status parameters before ttl (e.g. "hit").
func (c *Cache) replayStored(w http.ResponseWriter, r *http.Request, v *entry.View, now time.Time, xcache []string, params string) {
	h := w.Header()
	if hasPreconditions(r) {
		etag, _ := v.HeaderValue("Etag")
		lm, _ := v.HeaderValue("Last-Modified")
		if notModified(r, string(etag), string(lm)) {
			for _, name := range notModifiedHeaders {
				if val, ok := v.HeaderValue(name); ok {
					h[name] = []string{string(val)}
				}
			}
			h["X-Cache"] = xcache
			c.setHitHeaders(h, now.Sub(v.StoredAt), v.StoredAt.Add(v.TTL).Sub(now), params)
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	v.CopyHeader(h)
	h["X-Cache"] = xcache
	c.setHitHeaders(h, now.Sub(v.StoredAt), v.StoredAt.Add(v.TTL).Sub(now), params)
	w.WriteHeader(v.Status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(v.Body)
	}
}

// replayResult writes a run's shared result to w, for a request that waited on the run.
func (c *Cache) replayResult(w http.ResponseWriter, r *http.Request, res *result, xcache, status string) {
	h := w.Header()
	h["X-Cache"] = []string{xcache}
	if res.age != "" {
		h["Age"] = []string{res.age}
	}
	c.setCacheStatus(h, status)
	if hasPreconditions(r) && notModified(r, res.header.Get("Etag"), res.header.Get("Last-Modified")) {
		for _, name := range notModifiedHeaders {
			if values, ok := res.header[name]; ok {
				h[name] = slices.Clone(values)
			}
		}
		w.WriteHeader(http.StatusNotModified)
		return
	}
	for name, values := range res.header {
		h[name] = slices.Clone(values) // each response gets its own slices: outer code may edit them
	}
	w.WriteHeader(res.status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(res.body)
	}
}

// hasPreconditions reports whether r carries a precondition the cache evaluates on replay.
func hasPreconditions(r *http.Request) bool {
	return r.Header["If-None-Match"] != nil || r.Header["If-Modified-Since"] != nil
}
