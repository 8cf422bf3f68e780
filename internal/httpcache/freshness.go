package httpcache

import (
	"net/http"
	"strings"
	"time"
)

// ParseDate parses an HTTP-date (RFC 9110 §5.6.7): IMF-fixdate, or the obsolete RFC 850 and asctime
// forms, which recipients must accept. Surrounding whitespace is ignored.
func ParseDate(s string) (time.Time, bool) {
	t, err := http.ParseTime(strings.TrimSpace(s))
	if err != nil {
		return time.Time{}, false
	}
	return t, true
}

// DateValue returns the response's Date (RFC 9110 §6.6.1); ok is false when it is absent, invalid, or
// given twice with different values.
func DateValue(h http.Header) (time.Time, bool) {
	lines := h["Date"]
	if len(lines) == 0 {
		return time.Time{}, false
	}
	t, ok := ParseDate(lines[0])
	for _, l := range lines[1:] {
		if u, ok2 := ParseDate(l); !ok2 || !u.Equal(t) {
			return time.Time{}, false
		}
	}
	return t, ok
}

// ExpiresState says what a response's Expires field was.
type ExpiresState uint8

const (
	// NoExpires: no Expires field.
	NoExpires ExpiresState = iota
	// ExpiresAt: a valid date.
	ExpiresAt
	// ExpiresPast: an invalid date (such as "0"), or several that disagree. RFC 9111 §5.3: a cache
	// "MUST interpret invalid date formats, especially the value "0", as representing a time in the
	// past (i.e., "already expired")".
	ExpiresPast
)

// Expires returns the response's Expires (RFC 9111 §5.3).
func Expires(h http.Header) (time.Time, ExpiresState) {
	lines := h["Expires"]
	if len(lines) == 0 {
		return time.Time{}, NoExpires
	}
	t, ok := ParseDate(lines[0])
	if !ok {
		return time.Time{}, ExpiresPast
	}
	for _, l := range lines[1:] {
		if u, ok := ParseDate(l); !ok || !u.Equal(t) {
			return time.Time{}, ExpiresPast
		}
	}
	return t, ExpiresAt
}

// AgeValue returns a response's Age in seconds (RFC 9111 §5.1), capped at MaxDelta (§1.2.2). Age is a
// single delta-seconds: a field that is anything else (not a non-negative integer, a list, several
// lines) is Invalid, and the response must be taken as stale, as an invalid max-age is.
func AgeValue(h http.Header) (int64, DeltaState) {
	lines := h["Age"]
	switch len(lines) {
	case 0:
		return 0, Absent
	case 1:
		if n, ok := ParseDeltaSeconds(strings.TrimSpace(lines[0])); ok {
			return n, Valid
		}
	}
	return 0, Invalid
}

// InitialAge is the response's corrected initial age (RFC 9111 §4.2.3), from its Date and Age fields
// and the times the request was sent (requestTime) and the response received (responseTime); an
// invalid Age makes it MaxDelta seconds, so the response is stale:
//
//	apparent_age          = max(0, response_time - date_value)
//	corrected_age_value   = age_value + (response_time - request_time)
//	corrected_initial_age = max(apparent_age, corrected_age_value)
//
// The response's current age at a later time now is InitialAge + (now - responseTime).
func InitialAge(h http.Header, requestTime, responseTime time.Time) time.Duration {
	var apparent time.Duration
	if date, ok := DateValue(h); ok {
		apparent = max(0, responseTime.Sub(date))
	}
	var corrected time.Duration
	switch age, state := AgeValue(h); state {
	case Valid:
		corrected = time.Duration(age)*time.Second + max(0, responseTime.Sub(requestTime))
	case Invalid:
		corrected = MaxDelta * time.Second // an Age that cannot be read: stale from the start
	}
	return max(apparent, corrected)
}

// Lifetime is a response's freshness lifetime (RFC 9111 §4.2.1).
type Lifetime struct {
	// Explicit reports that the response carried its own lifetime (s-maxage, max-age or Expires, or
	// an invalid one of those, which gives a lifetime of zero: already stale). When it is false the
	// cache may assign a heuristic lifetime (§4.2.2).
	Explicit bool
	D        time.Duration
}

// ExplicitLifetime computes a response's explicit freshness lifetime as a shared cache does (RFC 9111
// §4.2.1): s-maxage, else max-age, else Expires minus Date (the time the response was received when
// Date is absent). An invalid or conflicting directive or Expires gives a lifetime of zero. When the
// directives came from a targeted field (RFC 9213 §2.2), Expires is ignored.
func ExplicitLifetime(d *Directives, h http.Header, responseTime time.Time, targeted bool) Lifetime {
	for _, delta := range [...]Delta{d.SMaxAge, d.MaxAge} {
		switch delta.State {
		case Valid:
			return Lifetime{Explicit: true, D: time.Duration(delta.Seconds) * time.Second}
		case Invalid:
			return Lifetime{Explicit: true}
		}
	}
	if targeted {
		return Lifetime{}
	}
	switch exp, state := Expires(h); state {
	case ExpiresAt:
		base := responseTime
		if date, ok := DateValue(h); ok {
			base = date
		}
		return Lifetime{Explicit: true, D: max(0, exp.Sub(base))}
	case ExpiresPast:
		return Lifetime{Explicit: true}
	}
	return Lifetime{}
}

// HeuristicallyCacheable reports whether RFC 9110 §15.1 lets a cache assign a heuristic lifetime to a
// response with this status: 200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414 and 501.
func HeuristicallyCacheable(status int) bool {
	switch status {
	case 200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// Understood reports whether the caching requirements of status are known to this package, as the
// must-understand directive asks (RFC 9111 §5.2.2.3): the final statuses RFC 9110 defines.
func Understood(status int) bool {
	switch status {
	case 200, 201, 202, 203, 204, 205, 206,
		300, 301, 302, 303, 304, 305, 307, 308,
		400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 421, 422, 426,
		500, 501, 502, 503, 504, 505:
		return true
	}
	return false
}

// Use is how a stored response may serve a request, given the request's Cache-Control.
type Use uint8

const (
	// UseAsIs: the response is fresh enough for the request.
	UseAsIs Use = iota
	// UseStale: the response is stale, but the request's max-stale accepts it (RFC 9111 §5.2.1.2).
	UseStale
	// UseRevalidated: the response may only be used after the origin validated it.
	UseRevalidated
)

// RequestUse decides how a stored response of age age and freshness lifetime lifetime may serve a
// request with directives req (RFC 9111 §5.2.1): no-cache asks for validation; max-age rejects a
// response older than it; min-fresh one that will not stay fresh that long; max-stale accepts a stale
// response up to that far past its lifetime (any, without argument), unless the response requires
// revalidation once stale (revalidate: must-revalidate, proxy-revalidate or no-cache, §5.2.2.2).
func RequestUse(req *Directives, age, lifetime time.Duration, revalidate bool) Use {
	if req.NoCache {
		return UseRevalidated
	}
	if req.MaxAge.State != Absent && (req.MaxAge.State == Invalid || age > time.Duration(req.MaxAge.Seconds)*time.Second) {
		return UseRevalidated
	}
	fresh := lifetime > age
	if fresh && req.MinFresh.Set() && lifetime-age < time.Duration(req.MinFresh.Seconds)*time.Second {
		return UseRevalidated
	}
	if fresh {
		return UseAsIs
	}
	if !revalidate && (req.MaxStaleAny || (req.MaxStale.Set() && age-lifetime <= time.Duration(req.MaxStale.Seconds)*time.Second)) {
		return UseStale
	}
	return UseRevalidated
}
