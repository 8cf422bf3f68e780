package stampede

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/seed-a1426414/stampede/internal/entry"
)

// lookupResult is what a store look-up found for a request.
type lookupResult int

const (
	lookupMiss    lookupResult = iota // nothing usable: run the handler
	lookupEntry                       // a usable entry (fresh or stale) in the view
	lookupVariant                     // an index: the response varies; look again under the variant key
	lookupSkipped                     // the circuit breaker skipped the store: nothing was read
)

// lookup reads k from the store and validates what it finds: errors, corrupt or foreign bytes, expired
// entries, entries a request with Authorization may not use, and entries whose Vary does not match are
// all misses (SPEC §6.4, §7.1). An index entry (the response varies on request headers) yields the
// variant key to look up instead.
func (c *Cache) lookup(r *http.Request, k key, anonAuth bool, now time.Time) (v entry.View, res lookupResult, variant key) {
	ok, probe := c.breaker.allow(now)
	if !ok {
		return v, lookupSkipped, variant
	}
	ctx, cancel := c.storeCtx(r.Context())
	b, found, err := c.store.Get(ctx, k.s)
	cancel()
	if err != nil && r.Context().Err() != nil {
		c.breaker.abandon(probe) // the client left; that says nothing about the store's health
		return v, lookupMiss, variant
	}
	c.breaker.done(now, probe, err) // the request's time: a second clock read costs a hit ~40 ns
	if err != nil {
		c.stats.getErrors.Add(1)
	}
	if err != nil || !found {
		return v, lookupMiss, variant
	}
	v, err = entry.Parse(b)
	if err != nil {
		c.logger.Warn("stampede: unusable stored entry, treated as a miss and removed",
			"cache", c.cfg.name, "error", err)
		ctx, cancel := c.storeCtx(r.Context())
		_ = c.store.Delete(ctx, k.s)
		cancel()
		return v, lookupMiss, variant
	}
	if v.Flags&entry.FlagVaryIndex != 0 {
		if now.Sub(v.StoredAt) >= v.TTL {
			return v, lookupMiss, variant
		}
		return v, lookupVariant, c.variantKey(k, &v, r.Header)
	}
	if entryState(&v, now) == stateExpired ||
		(anonAuth && v.Flags&entry.FlagAuthShareable == 0) ||
		(v.HasVary() && !viewVaryMatches(r.Header, &v)) {
		return v, lookupMiss, variant
	}
	return v, lookupEntry, variant
}

// variantKey derives the key of one variant of a varying response: the primary key with a digest of the
// request's (normalised) values of the Vary names appended inside the hash tag, so all variants of a URL
// live in the same Redis Cluster slot as its index.
func (c *Cache) variantKey(primary key, index *entry.View, h http.Header) key {
	var names []string
	index.EachVary(func(name, _ []byte) bool {
		names = append(names, string(name))
		return true
	})
	return variantKeyFor(primary, names, h)
}

func variantKeyFor(primary key, names []string, h http.Header) key {
	d := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, name := range names {
		v := varyValue(h, name)
		for _, s := range [...]string{name, v} {
			d.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
			d.Write([]byte(s))
		}
	}
	var sum [sha256.Size]byte
	d.Sum(sum[:0])
	// The variant's suffix goes after the hash tag's closing brace, so Redis Cluster hashes only the
	// primary digest: the index, every variant and their leases share one slot.
	out := make([]byte, 0, len(primary.s)+1+2*digestLen)
	out = append(out, primary.s...)
	out = append(out, '~')
	out = hex.AppendEncode(out, sum[:digestLen])
	return key{s: string(out), id: binary.LittleEndian.Uint64(sum[:8]), shard: sum[digestLen] % numShards}
}

// encodeIndex returns the index entry that says the response at a primary key varies on names.
func encodeIndex(names []string, now time.Time, ttl time.Duration) []byte {
	e := &entry.Entry{Status: http.StatusOK, StoredAt: now, TTL: ttl, Flags: entry.FlagVaryIndex}
	for _, n := range names {
		e.Vary = append(e.Vary, entry.VaryField{Name: n})
	}
	return entry.Encode(e)
}
