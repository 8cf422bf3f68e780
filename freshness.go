package stampede

import (
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
	"unsafe"

	"github.com/seed-a1426414/stampede/internal/entry"
)

// MaxAgePolicy says what a response's own max-age and s-maxage do to the TTL the middleware stores it for.
type MaxAgePolicy int

const (
	// MaxAgeOverride (the default): s-maxage, else max-age, replaces the handler TTL when present, as a
	// shared cache does (RFC 9111 §4.2.1). WithHTTPStatusTTL still decides which statuses are stored.
	MaxAgeOverride MaxAgePolicy = iota
	// MaxAgeCap: s-maxage, else max-age, can only shorten the handler TTL, never lengthen it.
	MaxAgeCap
	// MaxAgeIgnore: the handler TTL applies whatever the response says (no-store and private still count).
	MaxAgeIgnore
)

// freshness is how long a response may be used, decided once when it is recorded.
type freshness struct {
	ttl     time.Duration // fresh for this long after storing
	swr     time.Duration // then served stale while one request refreshes it
	sie     time.Duration // or served stale when the refresh fails (5xx, panic)
	noCache bool          // stored, but every use is revalidated with the handler first
}

// storeTTL is how long the store must keep the entry: its freshness plus the longer stale window.
func (f freshness) storeTTL() time.Duration {
	if f.ttl <= 0 && !f.noCache {
		return 0
	}
	return f.ttl + max(f.swr, f.sie)
}

// freshnessFor decides a response's freshness from the configured TTLs and its Cache-Control.
func (c *Cache) freshnessFor(status int, cc cacheControl) freshness {
	f := freshness{ttl: c.ttlFor(status), swr: c.cfg.staleWhileRevalidate, sie: c.cfg.staleIfError}
	if f.ttl <= 0 {
		return freshness{} // this status is not stored at all
	}
	if age := cc.sMaxAge; age >= 0 || cc.maxAge >= 0 {
		if age < 0 {
			age = cc.maxAge
		}
		d := time.Duration(min(age, int64(math.MaxInt64/time.Second))) * time.Second
		switch c.cfg.maxAgePolicy {
		case MaxAgeOverride:
			f.ttl = d
		case MaxAgeCap:
			f.ttl = min(f.ttl, d)
		}
	}
	if c.cfg.maxAgePolicy != MaxAgeIgnore {
		if cc.staleWhileRevalidate >= 0 {
			f.swr = time.Duration(cc.staleWhileRevalidate) * time.Second
		}
		if cc.staleIfError >= 0 {
			f.sie = time.Duration(cc.staleIfError) * time.Second
		}
	}
	if cc.noCache {
		f.noCache = true
	}
	if f.ttl <= 0 && !f.noCache {
		return freshness{} // max-age=0 without no-cache: nothing to keep
	}
	return f
}

// state is what an entry is good for at a given age.
type state int

const (
	stateFresh      state = iota
	stateStaleSWR         // serve it now, refresh in the background
	stateStaleIfErr       // run the handler; serve it if the handler fails
	stateExpired          // unusable
)

// entryState classifies a stored entry at now.
func entryState(v *entry.View, now time.Time) state {
	age := now.Sub(v.StoredAt)
	switch {
	case v.Flags&entry.FlagNoCache != 0:
		if age < v.TTL+v.StaleIfError {
			return stateStaleIfErr // usable only after the handler revalidated it (or failed)
		}
		return stateExpired
	case age < v.TTL:
		return stateFresh
	case age < v.TTL+v.StaleWhileRevalidate:
		return stateStaleSWR
	case age < v.TTL+v.StaleIfError:
		return stateStaleIfErr
	}
	return stateExpired
}

// xfetch reports whether a fresh entry should be refreshed early (Vattani, Chierichetti, Lowenstein,
// "Optimal Probabilistic Cache Stampede Prevention", VLDB 2015): refresh when
// now - delta*beta*ln(rand) >= expiry, where delta is how long the handler took to compute it. The
// closer to expiry and the slower the handler, the likelier; with many requests near expiry one of them
// refreshes the entry before it expires instead of all missing together.
func xfetch(v *entry.View, now time.Time, beta float64) bool {
	if beta <= 0 || v.ComputeTime <= 0 {
		return false
	}
	expiry := v.StoredAt.Add(v.TTL)
	gap := -float64(v.ComputeTime) * beta * math.Log(1-rand.Float64()) // rand in (0,1]: ln <= 0
	return !now.Add(time.Duration(gap)).Before(expiry)
}

// replayHeaders are the values of Age and Cache-Status for one response, built in one allocation: the
// two header slices and the bytes of both strings live in the same object.
type replayHeaders struct {
	vals [2]string
	buf  [96]byte
}

// Cache-Status parameters (RFC 9211 §2).
const (
	statusHit       = "hit"
	statusCollapsed = "fwd=uri-miss; collapsed"
	statusMiss      = "fwd=uri-miss"
)

// setHitHeaders sets Age (seconds since stored) and Cache-Status for a response replayed from the store.
// ttl is the remaining freshness in seconds (negative when stale); detail is appended when non-empty.
func (c *Cache) setHitHeaders(h http.Header, age time.Duration, ttl time.Duration, params string) {
	rh := new(replayHeaders)
	b := rh.buf[:0]
	b = strconv.AppendInt(b, int64(max(age, 0)/time.Second), 10)
	ageLen := len(b)
	b = append(b, c.cfg.cacheStatusName...)
	b = append(b, "; "...)
	b = append(b, params...)
	b = append(b, "; ttl="...)
	b = strconv.AppendInt(b, int64(ttl/time.Second), 10)
	if len(b) > len(rh.buf) { // a very long cache name spilled: the strings own their own bytes then
		rh.vals[0], rh.vals[1] = string(b[:ageLen]), string(b[ageLen:])
	} else {
		rh.vals[0] = unsafe.String(&rh.buf[0], ageLen)
		rh.vals[1] = unsafe.String(&rh.buf[ageLen], len(b)-ageLen)
	}
	h["Age"] = rh.vals[0:1:1]
	h["Cache-Status"] = rh.vals[1:2:2]
}

// setCacheStatus sets Cache-Status for a response that was not replayed from the store.
func (c *Cache) setCacheStatus(h http.Header, params string) {
	h["Cache-Status"] = []string{c.cfg.cacheStatusName + "; " + params}
}
