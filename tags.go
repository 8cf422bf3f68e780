package stampede

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"
)

// tagStore is what a store offers to keep the tag index itself, shared by every replica
// (backends/redisstore does, with Redis sets). Without it a Cache keeps a bounded index in memory,
// which only knows the responses this process stored.
type tagStore interface {
	// TagKeys records that the entry at key carries tags, for at least ttl.
	TagKeys(ctx context.Context, key string, tags []string, ttl time.Duration) error
	// PurgeTag deletes every entry recorded under tag and forgets the tag.
	PurgeTag(ctx context.Context, tag string) (int, error)
}

// Bounds on tags, so that a handler cannot make the index grow without limit.
const (
	maxTagsPerResponse = 32
	maxTagLen          = 256
	maxTaggedKeys      = 100_000 // (tag, key) pairs in the in-process index
)

// responseTags returns the tags of a response: the values of Cache-Tag and Surrogate-Key, separated
// by spaces or commas, without duplicates, at most maxTagsPerResponse of at most maxTagLen bytes each.
func responseTags(h http.Header) []string {
	var tags []string
	for _, name := range [...]string{"Cache-Tag", "Surrogate-Key"} {
		for _, v := range h[name] {
			for _, t := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
				if len(t) > maxTagLen || len(tags) == maxTagsPerResponse || contains(tags, t) {
					continue
				}
				tags = append(tags, t)
			}
		}
	}
	return tags
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// indexTags records the tags of a stored response (header is its recorded header) under keys (the
// variant and, when the response varies, its index), in the store when it keeps a tag index, in memory
// otherwise.
func (c *Cache) indexTags(header http.Header, keys []string, ttl time.Duration) {
	tags := responseTags(header)
	if len(tags) == 0 {
		return
	}
	ts, ok := c.store.(tagStore)
	if !ok {
		c.tags.add(tags, keys, c.cfg.clock().Add(ttl))
		return
	}
	for _, k := range keys {
		ctx, cancel := c.storeCtx(context.Background())
		err := ts.TagKeys(ctx, k, tags, ttl)
		cancel()
		if err != nil {
			c.stats.setErrors.Add(1)
			c.logger.Warn("stampede: tag index write failed; PurgeTag will miss this entry",
				"cache", c.cfg.name, "error", err)
			return
		}
	}
}

// tagIndex maps tags to the store keys of the entries that carry them, for stores that keep no tag
// index. It holds at most max (tag, key) pairs; pairs whose entry expired are dropped when it is full.
type tagIndex struct {
	mu   sync.Mutex
	tags map[string]map[string]time.Time // tag -> key -> expiry; guarded by mu
	n    int                             // pairs in tags; guarded by mu
	max  int
	full bool // warned that the index is full; guarded by mu
}

func newTagIndex(max int) *tagIndex {
	return &tagIndex{tags: map[string]map[string]time.Time{}, max: max}
}

// add records every (tag, key) pair until expires. It reports false when the index was full.
func (t *tagIndex) add(tags, keys []string, expires time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n+len(tags)*len(keys) > t.max {
		now := time.Now()
		for tag, ks := range t.tags {
			for k, exp := range ks {
				if now.After(exp) {
					delete(ks, k)
					t.n--
				}
			}
			if len(ks) == 0 {
				delete(t.tags, tag)
			}
		}
		if t.n+len(tags)*len(keys) > t.max {
			return false
		}
	}
	for _, tag := range tags {
		ks := t.tags[tag]
		if ks == nil {
			ks = map[string]time.Time{}
			t.tags[tag] = ks
		}
		for _, k := range keys {
			if _, ok := ks[k]; !ok {
				t.n++
			}
			if expires.After(ks[k]) {
				ks[k] = expires
			}
		}
	}
	return true
}

// take removes tag and returns its keys.
func (t *tagIndex) take(tag string) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	ks := t.tags[tag]
	delete(t.tags, tag)
	t.n -= len(ks)
	keys := make([]string, 0, len(ks))
	for k := range ks {
		keys = append(keys, k)
	}
	return keys
}
