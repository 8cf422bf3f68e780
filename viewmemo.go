package stampede

import (
	"context"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/seed-a1426414/stampede/internal/entry"
)

// viewSlot is what the middleware attaches to a stored entry: where its parts lie, and the Age and
// Cache-Status values of the last second it served.
type viewSlot struct {
	layout entry.Layout
	hit    atomic.Pointer[hitValues] // the Age and Cache-Status of a plain hit, for one second
}

// hitValues are the Age and Cache-Status values of a hit at one age, shared by every hit that has them:
// header slices are never modified in place by net/http, and their capacity of one makes an append
// copy them.
type hitValues struct {
	age, ttl    int64
	ageValue    []string
	statusValue []string
}

// stored is what a look-up read: the entry's bytes, and the annotation an AnnotatedStore keeps for it.
type stored struct {
	b    []byte
	slot *viewSlot
}

// storeGet reads key from the store, with the annotation an AnnotatedStore keeps for it.
func (c *Cache) storeGet(ctx context.Context, key string) (s stored, found bool, err error) {
	s.b, found, err = c.store.Get(ctx, key)
	if found && err == nil && c.aux != nil {
		s.slot, _ = c.aux.AuxOf(key, s.b).(*viewSlot)
	}
	return s, found, err
}

// parseStored returns the View of b, stored under key: from its annotation when the store kept one, by
// entry.Parse otherwise (and then attached).
func (c *Cache) parseStored(key string, b []byte, slot *viewSlot) (entry.View, *viewSlot, error) {
	if slot != nil {
		return slot.layout.ViewOf(b), slot, nil
	}
	v, err := entry.Parse(b)
	if err != nil || c.aux == nil {
		return v, nil, err
	}
	slot = &viewSlot{layout: v.Layout()}
	c.aux.AttachAux(key, b, slot)
	return v, slot, nil
}

// setHitHeaders sets Age (the entry's current age) and Cache-Status (params, then its remaining
// freshness as ttl) for a response replayed from the store. slot, when not nil, caches the values of a
// plain hit for the second they are good for, so a hot entry's hits allocate nothing for them.
func (c *Cache) setHitHeaders(h http.Header, v *entry.View, now time.Time, params string, slot *viewSlot) {
	nowNs := now.UnixNano()
	age := int64(v.AgeAt(nowNs) / time.Second)
	ttl := (v.FreshUntilNs() - nowNs) / int64(time.Second)
	if slot == nil || params != statusHit || slot.layout.CacheStatus {
		c.formatHitHeaders(h, age, ttl, params)
		return
	}
	hv := slot.hit.Load()
	if hv == nil || hv.age != age || hv.ttl != ttl {
		hv = &hitValues{age: age, ttl: ttl,
			ageValue:    []string{strconv.FormatInt(age, 10)},
			statusValue: []string{c.cfg.cacheStatusName + "; " + statusHit + "; ttl=" + strconv.FormatInt(ttl, 10)}}
		slot.hit.Store(hv)
	}
	h["Age"] = hv.ageValue
	h["Cache-Status"] = hv.statusValue
}
