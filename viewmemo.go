package stampede

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"
	"weak"

	"github.com/seed-a1426414/stampede/internal/entry"
)

// viewMemo remembers, per key, the entry bytes last parsed and where their parts lie, so that a hit on
// the same bytes again (an in-process store hands out the slice it was given, every time) is neither
// checksummed nor validated again: an entry's integrity is checked where it could have been corrupted,
// when it first comes from the store. Bytes from a store that copies (Redis) are new each time and
// parsed each time.
//
// A slot holds a weak pointer to the bytes, so the memo never keeps an evicted entry alive: once the
// bytes are collected the pointer reads nil, and memory reused by other bytes can never match it. It
// also keeps the Age and Cache-Status values of the last second it served, so that a hot entry's hits
// format them once a second rather than once a hit.
type viewMemo struct {
	slots [viewSlots]atomic.Pointer[viewSlot]
}

// viewSlots bounds the memo: a fixed table indexed by the key's digest. A slot costs a few hundred
// bytes when used; the memo only has to cover the hot set.
const viewSlots = 1024

// viewSlot is one parsed entry.
type viewSlot struct {
	bytes  weak.Pointer[byte] // the entry's first byte
	n      int                // and its length
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

// parse returns the View of b, stored under k: from the memo when b is the very slice parsed before,
// by entry.Parse otherwise (and then remembered).
func (m *viewMemo) parse(k key, b []byte) (entry.View, *viewSlot, error) {
	if len(b) == 0 {
		v, err := entry.Parse(b)
		return v, nil, err
	}
	p := unsafe.SliceData(b)
	i := k.id % viewSlots
	if s := m.slots[i].Load(); s != nil && s.n == len(b) && s.bytes.Value() == p {
		return s.layout.ViewOf(b), s, nil
	}
	v, err := entry.Parse(b)
	if err != nil {
		return v, nil, err
	}
	s := &viewSlot{bytes: weak.Make(p), n: len(b), layout: v.Layout()}
	m.slots[i].Store(s)
	return v, s, nil
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
