package stampede

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// ErrNotCached is returned by [Cache.Purge] for a request the cache never stores (it would pass through:
// a key function error, a keyed body over the limit, an upgrade, ...).
//
// A [KeyFunc] returns it (or an error wrapping it) to pass a request to the handler uncached without the
// warning other key function errors log: the quiet way to say "this request is not for the cache" (a
// request without a tenant, say). Such a request is counted as a pass with the reason "key-declined".
var ErrNotCached = errors.New("stampede: request is not cached")

// Purge removes the stored response for r: the entry under r's key or, when the response varies, its
// index, which makes every variant stored under it unreachable (a later response starts a new index),
// in both of the URL's key spaces (with and without an Authorization the key does not include). r is
// keyed as it would be when served (key headers, the key function, the keyed body); a method the cache
// does not serve counts as GET, so an incoming PURGE request for a URL can be passed as it is.
//
// Once Purge returns nil, no request is served a response from a run that started before it, and no
// such run stores its response: runs in flight still answer the requests already waiting on them, and
// later requests start a run of their own (behaviour contract §11). With a store that announces deletions
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
	keys, reason := c.urlKeys(r)
	if reason != "" {
		return fmt.Errorf("%w: %s", ErrNotCached, reason)
	}
	var errs []error
	for _, k := range keys {
		errs = append(errs, c.drop(ctx, k))
	}
	return errors.Join(errs...)
}

// drop invalidates what is stored for the URL key k (the entry, or the index of its variants): first the
// runs of this process, which stop being joined and whose writes in progress are waited for, then the
// store, which revokes the tickets of every replica's runs (see [FencedStore]).
func (c *Cache) drop(ctx context.Context, k key) error {
	var err error
	c.flights.Invalidate(k.s, k.id, func() { err = c.invalidateStored(ctx, k.s) })
	return err
}

// invalidateStored deletes storeKey from the store, revoking its tickets when the store fences writes.
func (c *Cache) invalidateStored(ctx context.Context, storeKey string) error {
	c.echoes.Expect(storeKey)
	return c.calls.Delete(ctx, func(ctx context.Context) error {
		if c.fenced != nil {
			return c.fenced.Invalidate(ctx, storeKey)
		}
		return c.store.Delete(ctx, storeKey)
	})
}

// PurgeKey removes the entry stored under storeKey (as logged, or as [Cache.Purge] derives it). The key
// of one variant of a varying response purges every variant of its URL (its index), since a variant's
// runs are fenced by the URL.
func (c *Cache) PurgeKey(ctx context.Context, storeKey string) error {
	if c.store == nil {
		return nil
	}
	k, ok := c.keys.parse(primaryOf(storeKey))
	if !ok {
		return c.invalidateStored(ctx, storeKey) // not one of this cache's keys: no run of ours has it
	}
	return c.drop(ctx, k)
}

// PurgeTag removes every stored response that carried tag in a Cache-Tag or Surrogate-Key response
// header (values separated by spaces or commas). With a store that keeps the tag index
// (backends/redisstore) the purge covers what every replica stored; with other stores it covers what
// this process stored, as remembered by a bounded in-memory index. As with Purge, no run that started
// before it is joined or stored once it returned.
func (c *Cache) PurgeTag(ctx context.Context, tag string) error {
	if c.store == nil {
		return nil
	}
	var errs []error
	c.flights.InvalidateLabel(tag, func() {
		if c.tagged != nil {
			c.echoes.Expect("\x00tag:" + tag)
			_, err := c.tagged.PurgeTag(ctx, tag)
			errs = append(errs, err)
			return
		}
		keys, at := c.tags.keys(tag)
		for _, k := range keys {
			errs = append(errs, c.invalidateStored(ctx, k))
		}
		c.tags.forget(tag, keys, at)
	})
	return errors.Join(errs...)
}
