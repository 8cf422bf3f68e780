package stampede

import (
	"net/http"
	"slices"
	"strconv"
	"unsafe"
)

// MaxAgePolicy says what a response's own freshness lifetime (s-maxage, max-age, Expires) does to the
// handler TTL.
type MaxAgePolicy int

const (
	// MaxAgeOverride (the default): a response's explicit lifetime (s-maxage, else max-age, else
	// Expires - Date, as a shared cache reads them, RFC 9111 §4.2.1) is its lifetime, whatever its
	// status; the handler TTL (or WithHTTPStatusTTL) is the heuristic lifetime of responses without one.
	MaxAgeOverride MaxAgePolicy = iota
	// MaxAgeCap: an explicit lifetime can only shorten the handler TTL (or the status's
	// WithHTTPStatusTTL), never lengthen it.
	MaxAgeCap
	// MaxAgeIgnore: the handler TTL (or WithHTTPStatusTTL) applies whatever the response says about
	// freshness; no-store, private and the other sharing rules still count.
	MaxAgeIgnore
)

// replayHeaders are the values of Age and Cache-Status for one response, built in one allocation: the
// two header slices and the bytes of both strings live in the same object.
type replayHeaders struct {
	vals [2]string
	buf  [96]byte
}

// statusHit is the Cache-Status parameter of a response served from the store (RFC 9211 §2.1).
const statusHit = "hit"

// formatHitHeaders sets Age (age, in seconds) and Cache-Status (params, then ttl, the remaining
// freshness in seconds, negative when stale) for a response replayed from the store, in one allocation.
func (c *Cache) formatHitHeaders(h http.Header, age, ttl int64, params string) {
	rh := new(replayHeaders)
	b := rh.buf[:0]
	b = strconv.AppendInt(b, max(age, 0), 10)
	ageLen := len(b)
	b = append(b, c.cfg.cacheStatusName...)
	b = append(b, "; "...)
	b = append(b, params...)
	b = append(b, "; ttl="...)
	b = strconv.AppendInt(b, ttl, 10)
	if len(b) > len(rh.buf) { // a very long cache name spilled: the strings own their own bytes then
		rh.vals[0], rh.vals[1] = string(b[:ageLen]), string(b[ageLen:])
	} else {
		rh.vals[0] = unsafe.String(&rh.buf[0], ageLen)
		rh.vals[1] = unsafe.String(&rh.buf[ageLen], len(b)-ageLen)
	}
	h["Age"] = rh.vals[0:1:1]
	if prev := h["Cache-Status"]; prev != nil {
		// Caches nearer the origin came first: ours goes last (RFC 9211 §2).
		h["Cache-Status"] = append(slices.Clip(prev), rh.vals[1])
		return
	}
	h["Cache-Status"] = rh.vals[1:2:2]
}

// setCacheStatus sets Cache-Status for a response that was not replayed from the store, after any the
// response already carries from caches nearer the origin (RFC 9211 §2).
func (c *Cache) setCacheStatus(h http.Header, params string) {
	v := c.cfg.cacheStatusName + "; " + params
	if prev := h["Cache-Status"]; prev != nil {
		h["Cache-Status"] = append(slices.Clip(prev), v)
		return
	}
	h["Cache-Status"] = []string{v}
}
