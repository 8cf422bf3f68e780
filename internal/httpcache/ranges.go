package httpcache

import (
	"strconv"
	"strings"
)

// RangeKind is how a stored response of known length answers a request's Range field.
type RangeKind uint8

const (
	// WholeBody: no Range, an invalid or non-bytes one, or several ranges: send the whole response
	// (RFC 9110 §14.2: a server may ignore Range; this cache does not build multipart/byteranges).
	WholeBody RangeKind = iota
	// OneRange: one satisfiable byte range: send a 206 with Content-Range (RFC 9110 §14.4, §15.3.7).
	OneRange
	// Unsatisfiable: no range overlaps the body: send a 416 with Content-Range "bytes */length"
	// (RFC 9110 §15.5.17).
	Unsatisfiable
)

// ByteRange is a satisfiable range of a body: bytes First through Last, both inclusive.
type ByteRange struct {
	First, Last int64
}

// Len returns the number of bytes in r.
func (r ByteRange) Len() int64 { return r.Last - r.First + 1 }

// ContentRange returns the Content-Range field value for r within a body of length size.
func (r ByteRange) ContentRange(size int64) string {
	return "bytes " + strconv.FormatInt(r.First, 10) + "-" + strconv.FormatInt(r.Last, 10) + "/" +
		strconv.FormatInt(size, 10)
}

// UnsatisfiedRange returns the Content-Range field value of a 416 for a body of length size.
func UnsatisfiedRange(size int64) string { return "bytes */" + strconv.FormatInt(size, 10) }

// maxRanges bounds how many ranges of one field are looked at: more is either abuse or a request this
// cache answers with the whole body anyway.
const maxRanges = 64

// ParseRange evaluates a Range field value (RFC 9110 §14.1.2) against a body of length size. Only the
// "bytes" unit is understood; anything it cannot parse means WholeBody, as §14.2 allows.
func ParseRange(value string, size int64) (RangeKind, ByteRange) {
	unit, set, ok := strings.Cut(strings.TrimSpace(value), "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(unit), "bytes") {
		return WholeBody, ByteRange{}
	}
	var found []ByteRange
	n := 0
	for spec := range strings.SplitSeq(set, ",") {
		spec = strings.TrimSpace(spec)
		if spec == "" {
			continue
		}
		if n++; n > maxRanges {
			return WholeBody, ByteRange{}
		}
		r, satisfiable, ok := parseRangeSpec(spec, size)
		if !ok {
			return WholeBody, ByteRange{}
		}
		if satisfiable {
			found = append(found, r)
		}
	}
	switch {
	case n == 0:
		return WholeBody, ByteRange{}
	case len(found) == 0:
		return Unsatisfiable, ByteRange{}
	case n == 1:
		return OneRange, found[0]
	}
	return WholeBody, ByteRange{}
}

// parseRangeSpec parses one int-range ("first-last", "first-") or suffix-range ("-n").
func parseRangeSpec(spec string, size int64) (r ByteRange, satisfiable, ok bool) {
	a, b, found := strings.Cut(spec, "-")
	if !found {
		return r, false, false
	}
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	if a == "" { // suffix-range: the last n bytes
		n, ok := parseDigits(b)
		if !ok {
			return r, false, false
		}
		if n == 0 || size == 0 {
			return r, false, true
		}
		return ByteRange{First: max(0, size-n), Last: size - 1}, true, true
	}
	first, ok := parseDigits(a)
	if !ok {
		return r, false, false
	}
	last := size - 1
	if b != "" {
		l, ok := parseDigits(b)
		if !ok || l < first {
			return r, false, false
		}
		last = min(l, size-1)
	}
	if first >= size {
		return r, false, true
	}
	return ByteRange{First: first, Last: last}, true, true
}

// parseDigits parses 1DIGIT*, saturating rather than overflowing.
func parseDigits(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < 1<<55 {
			n = n*10 + int64(c-'0')
		}
	}
	return n, true
}
