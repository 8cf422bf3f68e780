package stampede

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// ErrNotCached is returned by [Cache.Purge] for a request the cache never stores (it would pass through:
// a key function error, a keyed body over the limit, an upgrade, ...).
var ErrNotCached = errors.New("stampede: request is not cached")

// Purge removes the stored response for r: the entry under r's key or, when the response varies, its
// index, which makes every variant stored under it unreachable (a later response starts a new index).
// r is keyed as it would be when served, Authorization included; a method the cache does not serve
// counts as GET, so an incoming PURGE request for a URL can be passed as it is. A run in flight for the
// key still answers the requests waiting on it but is not stored. With a store that announces deletions
// (backends/redisstore) every replica's local tier drops the entry too.
func (c *Cache) Purge(ctx context.Context, r *http.Request) error {
	if c.store == nil {
		return nil
	}
	if !c.cfg.serves(r.Method) {
		r = r.Clone(ctx)
		r.Method = http.MethodGet
		r.Body = http.NoBody
	}
	if r.Header["Upgrade"] != nil {
		return fmt.Errorf("%w: %s", ErrNotCached, reasonUpgrade)
	}
	k, _, reason := c.key(r)
	if reason != "" {
		return fmt.Errorf("%w: %s", ErrNotCached, reason)
	}
	return c.drop(ctx, k)
}

// drop removes what is stored under k, and keeps a run in flight for k from storing its response.
func (c *Cache) drop(ctx context.Context, k key) error {
	if f := c.flights.lookup(k); f != nil {
		f.invalidated.Store(true)
	}
	return c.PurgeKey(ctx, k.s)
}

// PurgeKey removes the entry stored under storeKey (as logged, or as [Cache.Purge] derives it).
func (c *Cache) PurgeKey(ctx context.Context, storeKey string) error {
	if c.store == nil {
		return nil
	}
	ctx, cancel := c.storeCtx(ctx)
	defer cancel()
	return c.store.Delete(ctx, storeKey)
}

// PurgeTag removes every stored response that carried tag in a Cache-Tag or Surrogate-Key response
// header (values separated by spaces or commas). With a store that keeps the tag index
// (backends/redisstore) the purge covers what every replica stored; with other stores it covers what
// this process stored, as remembered by a bounded in-memory index.
func (c *Cache) PurgeTag(ctx context.Context, tag string) error {
	if c.store == nil {
		return nil
	}
	if ts, ok := tagStoreOf(c.store); ok {
		_, err := ts.PurgeTag(ctx, tag)
		return err
	}
	var errs []error
	for _, k := range c.tags.take(tag) {
		errs = append(errs, c.PurgeKey(ctx, k))
	}
	return errors.Join(errs...)
}
