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

// ParseStrictDate parses an HTTP-date exactly as RFC 9110 §5.6.7 spells its three forms, where
// ParseDate takes whatever net/http's ParseTime takes (extra spaces, a one-digit hour, an obsolete form
// with a four-digit year):
//
//	IMF-fixdate  = day-name "," SP 2DIGIT SP month SP 4DIGIT SP time-of-day SP "GMT"
//	rfc850-date  = day-name-l "," SP 2DIGIT "-" month "-" 2DIGIT SP time-of-day SP "GMT"
//	asctime-date = day-name SP month SP ( 2DIGIT / ( SP DIGIT ) ) SP time-of-day SP 4DIGIT
//	time-of-day  = 2DIGIT ":" 2DIGIT ":" 2DIGIT
//
// Day names, months and "GMT" are matched without regard to case (the grammar says they are
// case-sensitive; every browser and most caches accept "THU" or "gmt", and nothing is gained by reading
// such a date as invalid). The day name is not checked against the date. A two-digit rfc850 year is
// 20YY up to 68 and 19YY from 69, as Go's time package reads it. Surrounding spaces and tabs are
// ignored. Expires uses it: RFC 9111 §5.3 makes an invalid Expires "already expired", so a lenient
// reading would keep a response fresh that the origin's field does not make fresh.
func ParseStrictDate(s string) (time.Time, bool) {
	s = strings.Trim(s, " \t")
	var year, month, day int
	var clock string
	switch {
	case len(s) == 29 && s[3] == ',' && s[4] == ' ' && s[7] == ' ' && s[11] == ' ' && s[16] == ' ' && s[25] == ' ':
		// Sun, 06 Nov 1994 08:49:37 GMT
		if !isDayName(s[:3]) || !strings.EqualFold(s[26:], "GMT") {
			return time.Time{}, false
		}
		day, month, year, clock = digits(s[5:7]), monthNumber(s[8:11]), digits(s[12:16]), s[17:25]
	case len(s) == 24 && s[3] == ' ' && s[7] == ' ' && s[10] == ' ' && s[19] == ' ':
		// Sun Nov  6 08:49:37 1994
		if !isDayName(s[:3]) {
			return time.Time{}, false
		}
		d := s[8:10]
		if d[0] == ' ' {
			d = "0" + d[1:]
			if d == "00" {
				return time.Time{}, false
			}
		}
		day, month, year, clock = digits(d), monthNumber(s[4:7]), digits(s[20:24]), s[11:19]
	default:
		// Sunday, 06-Nov-94 08:49:37 GMT
		name, rest, ok := strings.Cut(s, ", ")
		if !ok || !isLongDayName(name) || len(rest) != 22 || rest[2] != '-' || rest[6] != '-' || rest[9] != ' ' ||
			rest[18] != ' ' || !strings.EqualFold(rest[19:], "GMT") {
			return time.Time{}, false
		}
		day, month, year, clock = digits(rest[:2]), monthNumber(rest[3:6]), digits(rest[7:9]), rest[10:18]
		if year >= 0 {
			year += 1900
			if year < 1969 {
				year += 100
			}
		}
	}
	if len(clock) != 8 || clock[2] != ':' || clock[5] != ':' {
		return time.Time{}, false
	}
	hour, minute, sec := digits(clock[:2]), digits(clock[3:5]), digits(clock[6:8])
	if year < 0 || month < 1 || day < 1 || hour < 0 || hour > 23 || minute < 0 || minute > 59 || sec < 0 || sec > 60 {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, min(sec, 59), 0, time.UTC)
	if t.Day() != day { // 31 Feb and the like: time.Date would have normalised it into March
		return time.Time{}, false
	}
	if sec == 60 { // a leap second (RFC 9110 §5.6.7 allows it): the instant after :59
		t = t.Add(time.Second)
	}
	return t, true
}

// digits returns the value of s, a string of ASCII digits, or -1 when s is empty or has anything else.
func digits(s string) int {
	if s == "" {
		return -1
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return -1
		}
		n = n*10 + int(s[i]-'0')
	}
	return n
}

var (
	dayNames     = [...]string{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}
	longDayNames = [...]string{"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"}
	monthNames   = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
)

func isDayName(s string) bool {
	for _, n := range dayNames {
		if strings.EqualFold(s, n) {
			return true
		}
	}
	return false
}

func isLongDayName(s string) bool {
	for _, n := range longDayNames {
		if strings.EqualFold(s, n) {
			return true
		}
	}
	return false
}

// monthNumber returns 1 to 12 for a month's three-letter name, or -1.
func monthNumber(s string) int {
	for i, n := range monthNames {
		if strings.EqualFold(s, n) {
			return i + 1
		}
	}
	return -1
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

// Expires returns the response's Expires (RFC 9111 §5.3), read with ParseStrictDate: a value that is
// not an HTTP-date as RFC 9110 §5.6.7 spells it is in the past, whatever else parses it.
func Expires(h http.Header) (time.Time, ExpiresState) {
	lines := h["Expires"]
	if len(lines) == 0 {
		return time.Time{}, NoExpires
	}
	t, ok := ParseStrictDate(lines[0])
	if !ok {
		return time.Time{}, ExpiresPast
	}
	for _, l := range lines[1:] {
		if u, ok := ParseStrictDate(l); !ok || !u.Equal(t) {
			return time.Time{}, ExpiresPast
		}
	}
	return t, ExpiresAt
}

// AgeValue returns a response's Age in seconds (RFC 9111 §5.1), capped at MaxDelta (§1.2.2). Age is a
// singleton field, but §5.1 says a cache that meets a list (one line "7200, 0", or several lines) uses
// its first member and discards the rest; empty list members do not count (RFC 9110 §5.6.1). A first
// member that is not a non-negative integer ("abc", "-7200", "7200.0", "7200;a=b") is Invalid, and
// §5.1 says to ignore the field then: InitialAge reads an Invalid Age as no Age at all.
func AgeValue(h http.Header) (int64, DeltaState) {
	lines := h["Age"]
	if len(lines) == 0 {
		return 0, Absent
	}
	for _, line := range lines {
		for line != "" {
			var member string
			member, line, _ = strings.Cut(line, ",")
			member = strings.Trim(member, " \t")
			if member == "" {
				continue
			}
			if n, ok := ParseDeltaSeconds(member); ok {
				return n, Valid
			}
			return 0, Invalid
		}
	}
	return 0, Invalid // only empty members: nothing to read
}

// InitialAge is the response's corrected initial age (RFC 9111 §4.2.3), from its Date and Age fields
// and the times the request was sent (requestTime) and the response received (responseTime); an Age
// that AgeValue finds Invalid is ignored, as RFC 9111 §5.1 says (only Date then gives an age):
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
	if age, state := AgeValue(h); state == Valid {
		corrected = time.Duration(age)*time.Second + max(0, responseTime.Sub(requestTime))
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
// Date is absent), at most MaxDelta seconds. An invalid or conflicting directive or Expires gives a lifetime of zero. When the
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
		// Capped at MaxDelta seconds, as a delta-seconds lifetime is: an Expires centuries ahead
		// (2286) would otherwise overflow the instant it is fresh until.
		return Lifetime{Explicit: true, D: min(max(0, exp.Sub(base)), MaxDelta*time.Second)}
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
