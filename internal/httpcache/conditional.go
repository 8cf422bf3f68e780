package httpcache

import (
	"net/http"
	"strings"
	"time"
)

// Validators are what a stored response can be validated by: its entity tag and its modification time
// (RFC 9110 §8.8).
type Validators struct {
	ETag string // the ETag field value, e.g. `"abc"` or `W/"abc"`; "" when there is none
	// LastModified is the Last-Modified time, or, for If-Modified-Since only, the response's Date or
	// the time it was stored when it has none (RFC 9111 §4.3.2); zero when unknown.
	LastModified time.Time
	// HasLastModified reports that LastModified came from a Last-Modified field, the only date If-Range
	// and If-Unmodified-Since may be evaluated against.
	HasLastModified bool
}

// ResponseValidators returns the validators of a stored response with header h, stored at storedAt.
func ResponseValidators(h http.Header, storedAt time.Time) Validators {
	v := Validators{}
	if tags := h["Etag"]; len(tags) > 0 {
		v.ETag = strings.TrimSpace(tags[0])
	}
	if lm := h["Last-Modified"]; len(lm) > 0 {
		if t, ok := ParseDate(lm[0]); ok {
			v.LastModified, v.HasLastModified = t, true
		}
	}
	if v.LastModified.IsZero() {
		if t, ok := DateValue(h); ok {
			v.LastModified = t
		} else {
			v.LastModified = storedAt
		}
	}
	return v
}

// Precondition is the outcome of a request's conditional fields evaluated against a stored response.
type Precondition uint8

const (
	// Proceed: serve the stored response (or the range asked for).
	Proceed Precondition = iota
	// NotModified: answer 304 (If-None-Match or If-Modified-Since).
	NotModified
	// Failed: answer 412 (If-Match or If-Unmodified-Since).
	Failed
)

// HasConditionals reports whether a request carries a precondition [Evaluate] looks at.
func HasConditionals(h http.Header) bool {
	return h["If-None-Match"] != nil || h["If-Modified-Since"] != nil || h["If-Match"] != nil ||
		h["If-Unmodified-Since"] != nil
}

// Evaluate evaluates the preconditions of a GET or HEAD request with header h against a stored
// response's validators, in the order of RFC 9110 §13.2.2: If-Match, else If-Unmodified-Since; then
// If-None-Match, else If-Modified-Since. A field that cannot be evaluated (an invalid date, no
// Last-Modified for If-Unmodified-Since) is ignored, as §13.1.3 and §13.1.4 say.
func Evaluate(h http.Header, v Validators) Precondition {
	if im := h["If-Match"]; im != nil && !blank(im) {
		if !etagListMatches(im, v.ETag, true) {
			return Failed
		}
	} else if ius := h["If-Unmodified-Since"]; ius != nil && v.HasLastModified {
		if t, ok := ParseDate(ius[0]); ok && v.LastModified.After(t) {
			return Failed
		}
	}
	if inm := h["If-None-Match"]; inm != nil && !blank(inm) {
		if etagListMatches(inm, v.ETag, false) {
			return NotModified
		}
		return Proceed
	}
	if ims := h["If-Modified-Since"]; ims != nil && !v.LastModified.IsZero() {
		if t, ok := ParseDate(ims[0]); ok && !v.LastModified.Truncate(time.Second).After(t) {
			return NotModified
		}
	}
	return Proceed
}

// blank reports whether a field's lines are all empty: such an If-Match or If-None-Match is evaluated
// as absent, as net/http's ServeContent does, so a cache and its origin answer it alike.
func blank(lines []string) bool {
	for _, line := range lines {
		if strings.TrimSpace(line) != "" {
			return false
		}
	}
	return true
}

// etagListMatches reports whether an If-Match or If-None-Match field (lines of entity-tags, or "*")
// matches etag: by strong comparison (both strong and equal) for If-Match, weak comparison (equal
// opaque tags) for If-None-Match (RFC 9110 §8.8.3.2). "*" matches any current representation.
func etagListMatches(lines []string, etag string, strong bool) bool {
	for _, line := range lines {
		for tok := range strings.SplitSeq(line, ",") {
			tok = strings.TrimSpace(tok)
			if tok == "*" {
				return true
			}
			if etag != "" && tok != "" && etagsMatch(tok, etag, strong) {
				return true
			}
		}
	}
	return false
}

// etagsMatch compares two entity-tags (RFC 9110 §8.8.3.2).
func etagsMatch(a, b string, strong bool) bool {
	aw, bw := strings.HasPrefix(a, "W/"), strings.HasPrefix(b, "W/")
	if strong && (aw || bw) {
		return false
	}
	return strings.TrimPrefix(a, "W/") == strings.TrimPrefix(b, "W/")
}

// NotModifiedFields are the fields a 304 built from a stored response carries (RFC 9110 §15.4.5): those
// a 200 would have sent that describe the selected representation and its caching.
var NotModifiedFields = [...]string{"Cache-Control", "Content-Location", "Date", "Etag", "Expires", "Last-Modified", "Vary"}

// IfRangeMatches reports whether a request's If-Range field (RFC 9110 §13.1.5) lets its Range apply to
// a stored response: an entity-tag must match the response's by strong comparison, an HTTP-date must
// equal its Last-Modified exactly. An absent If-Range matches; an invalid one does not.
func IfRangeMatches(h http.Header, v Validators) bool {
	lines := h["If-Range"]
	if lines == nil {
		return true
	}
	val := strings.TrimSpace(lines[0])
	if strings.HasPrefix(val, `"`) || strings.HasPrefix(val, "W/") {
		return v.ETag != "" && etagsMatch(val, v.ETag, true)
	}
	t, ok := ParseDate(val)
	return ok && v.HasLastModified && t.Equal(v.LastModified)
}

// Freshen merges the header fields of a 304, received in answer to a conditional request made with a
// stored response's validators, into that response's header (RFC 9111 §3.2, §4.3.4), returning a new
// header: each field of the 304 replaces the stored field of that name, except the hop-by-hop fields
// and those its Connection names, Age (a stored response's age is recomputed from the 304, never
// kept), and the fields that describe the stored representation itself, which a 304 cannot change:
// Content-Length, Content-Encoding, Content-Range, Content-MD5 and ETag. The 304 answers the request
// the cache made for this stored response, so it is the one updated.
func Freshen(stored, notModified http.Header) http.Header {
	merged := make(http.Header, len(stored)+len(notModified))
	for name, values := range stored {
		merged[name] = values
	}
	connection := notModified["Connection"]
	for name, values := range notModified {
		if representationFields[name] || name == "Age" || HopByHop(name, connection) {
			continue
		}
		merged[name] = values
	}
	return merged
}

// representationFields describe the bytes of a stored response: a 304 never replaces them.
var representationFields = map[string]bool{
	"Content-Length": true, "Content-Encoding": true, "Content-Range": true, "Content-Md5": true, "Etag": true,
}

func first(values []string) string {
	if len(values) == 0 {
		return ""
	}
	return values[0]
}

// hopByHop are the fields that describe one connection (RFC 9110 §7.6.1), never stored or replayed.
var hopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true, "Proxy-Authentication-Info": true,
	"Proxy-Authorization": true, "Proxy-Connection": true, "Te": true, "Trailer": true,
	"Transfer-Encoding": true, "Upgrade": true,
}

// HopByHop reports whether the field name (canonical) is hop-by-hop: a standard one, or one the
// message's Connection field lines name (RFC 9110 §7.6.1).
func HopByHop(name string, connection []string) bool {
	if hopByHop[name] {
		return true
	}
	for _, line := range connection {
		for tok := range strings.SplitSeq(line, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), name) {
				return true
			}
		}
	}
	return false
}
