package stampede

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/seed-a1426414/stampede/internal/entry"
	"github.com/seed-a1426414/stampede/internal/flight"
	"github.com/seed-a1426414/stampede/internal/httpcache"
	"github.com/seed-a1426414/stampede/internal/storecall"
)

// lookupResult is what a store look-up found for a request.
type lookupResult int

const (
	lookupMiss    lookupResult = iota // nothing usable (or an error, a timeout): run the handler
	lookupEntry                       // an entry that is not past its usable life, in the view
	lookupVariant                     // an index: the response varies; look again under the variant key
	lookupSkipped                     // the circuit breaker skipped the store: nothing was read
	lookupFailed                      // the store did not answer (an error, a timeout): a miss
)

// lookup reads k from the store and validates what it finds: errors, corrupt or foreign bytes, entries
// past their usable life, entries a request with Authorization may not use, and entries whose Vary does
// not match are all misses (docs/behaviour.md §6.4, §7.1). An index entry (the response varies on
// request headers) yields the variant key to look up instead, and the index itself.
func (c *Cache) lookup(r *http.Request, k key, anonAuth bool, now time.Time) (v entry.View, res lookupResult, variant key, idx *varyIndex) {
	v, res, variant, idx, _ = c.lookupSlot(r, k, anonAuth, now)
	return v, res, variant, idx
}

// lookupSlot is lookup that also returns the memo slot of the entry found (see [viewMemo]).
func (c *Cache) lookupSlot(r *http.Request, k key, anonAuth bool, now time.Time) (v entry.View, res lookupResult, variant key,
	idx *varyIndex, slot *viewSlot) {
	got, read := storecall.Read(c.calls, r.Context(), func(ctx context.Context) (stored, bool, error) {
		return c.storeGet(ctx, k.s)
	})
	switch read {
	case storecall.Skipped:
		return v, lookupSkipped, variant, nil, nil
	case storecall.Failed:
		return v, lookupFailed, variant, nil, nil
	case storecall.Miss:
		return v, lookupMiss, variant, nil, nil
	}
	v, slot, err := c.parseStored(k.s, got.b, got.slot)
	if err != nil {
		c.stats.logs.log(r.Context(), c.logger, logUnusableEntry, slog.LevelWarn,
			"stampede: unusable stored entry, treated as a miss and removed", "cache", c.cfg.name, "error", err)
		_ = c.invalidateStored(r.Context(), k.s)
		return v, lookupMiss, variant, nil, nil
	}
	if v.Flags&entry.FlagVaryIndex != 0 {
		if !now.Before(v.UsableUntil()) || len(v.Body) != generationLen {
			return v, lookupMiss, variant, nil, nil
		}
		idx = &varyIndex{generation: v.Body, until: v.UsableUntil()}
		v.EachVary(func(name, _ []byte) bool {
			idx.names = append(idx.names, string(name))
			return true
		})
		return v, lookupVariant, variantKeyFor(k, idx.generation, idx.names, r.Header), idx, nil
	}
	if now.UnixNano() >= v.UsableUntilNs() ||
		(anonAuth && v.Flags&entry.FlagAuthShareable == 0) ||
		(v.HasVary() && !viewVaryMatches(r.Header, &v)) {
		return v, lookupMiss, variant, nil, nil
	}
	return v, lookupEntry, variant, nil, slot
}

// viewVaryMatches reports whether request header h selects the stored response v (RFC 9111 §4.1): the
// request's value of every field the response's Vary named equals the value recorded with it.
func viewVaryMatches(h http.Header, v *entry.View) bool {
	ok := true
	v.EachVary(func(name, value []byte) bool {
		ok = httpcache.VaryValue(h, string(name)) == string(value)
		return ok
	})
	return ok
}

// variantKeyFor derives the key of one variant of a varying response: the primary key with a digest of
// the index's generation and the request's values of the Vary names appended after the hash tag, so
// every variant of a URL lives in the Redis Cluster slot of its index, and replacing or deleting the
// index (a new generation) makes the old variants unreachable.
func variantKeyFor(primary key, generation []byte, names []string, h http.Header) key {
	d := sha256.New()
	var n [binary.MaxVarintLen64]byte
	d.Write(generation)
	for _, name := range names {
		v := httpcache.VaryValue(h, name)
		for _, s := range [...]string{name, v} {
			d.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
			d.Write([]byte(s))
		}
	}
	var sum [sha256.Size]byte
	d.Sum(sum[:0])
	out := make([]byte, 0, len(primary.s)+1+2*digestLen)
	out = append(out, primary.s...)
	out = append(out, '~')
	out = hex.AppendEncode(out, sum[:digestLen])
	// The variant's hash keeps the primary's low bits, so its flight is in the primary's shard of the
	// flight group, where an invalidation of the URL finds it (see [flight.Group.Invalidate]).
	id := binary.LittleEndian.Uint64(sum[:8])&^(flight.NumShards-1) | primary.id&(flight.NumShards-1)
	return key{s: string(out), id: id, shard: shardOf(id)}
}

// primaryOf returns the key of the URL a store key belongs to: a variant's primary key, the key itself
// otherwise.
func primaryOf(storeKey string) string {
	if i := strings.LastIndexByte(storeKey, '~'); i > 0 && strings.HasSuffix(storeKey[:i], "}") {
		return storeKey[:i]
	}
	return storeKey
}

// encodeIndex returns the index entry that says the response at a primary key varies on names, with
// the generation its variants are keyed under as its body.
func encodeIndex(names []string, generation []byte, now time.Time, ttl time.Duration) []byte {
	e := &entry.Entry{Status: http.StatusOK, StoredAt: now, Lifetime: ttl, Flags: entry.FlagVaryIndex, Body: generation}
	for _, n := range names {
		e.Vary = append(e.Vary, entry.VaryField{Name: n})
	}
	return entry.Encode(e)
}
