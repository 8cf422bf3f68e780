// Package entry is the versioned binary format of a recorded HTTP response, shared by the middleware
// and every store. A store holds opaque bytes; only this package gives them meaning.
//
// Layout (all integers little-endian, lengths as uvarints):
//
//	magic "STMP" | version u8 | flags u8 | status u16 |
//	stored-at i64 (unix ns) | lifetime i64 | initial-age i64 | stale-while-revalidate i64 |
//	stale-if-error i64 | keep i64 | compute i64 |
//	header block: count, then per header: name, value count, values |
//	vary block: count, then per field: name, request value |
//	body: every byte up to the checksum |
//	crc32c u32 of everything before it
//
// The body has no length of its own: it runs to the checksum. So a response can be written into its
// entry while it streams: the head (everything before the body) is encoded once the response's header
// is known, the body is appended as the handler writes it, and [Seal] adds the checksum at the end.
//
// Parse rejects anything it does not understand: a wrong magic or version, a bad checksum, a length that
// runs past the end, header names that are not HTTP tokens and values with CR, LF or NUL.
// So a corrupt, truncated, foreign or older entry is an error, never a wrong response.
package entry

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"net/http"
	"time"
	"unsafe"
)

// Magic starts every encoded entry.
const Magic = "STMP"

// Version is the format version this package writes and the only one it reads. Version 1 (a TTL in
// place of lifetime, initial age and keep, and a length-prefixed body) is read as foreign.
const Version = 2

// fixedLen is the length of the fixed-size prefix: magic, version, flags, status and seven int64s.
const fixedLen = 4 + 1 + 1 + 2 + 7*8

// computeOffset is where the compute time sits in the fixed prefix; Seal patches it.
const computeOffset = fixedLen - 8

// MinLen is the length of the smallest valid entry (no headers, no vary, empty body).
const MinLen = fixedLen + 2 + 4

// Flags records facts about a response that decide who may reuse it.
type Flags uint8

const (
	// FlagAuthShareable marks a response that said public, s-maxage or must-revalidate, so it may be
	// served to requests that carry Authorization (RFC 9111 §3.5).
	FlagAuthShareable Flags = 1 << iota
	// FlagNoCache marks a response that said no-cache: it may be stored but must be revalidated before
	// every use (RFC 9111 §5.2.2.4).
	FlagNoCache
	// FlagVaryIndex marks an index entry, stored at a URL's primary key: it holds no response, only the
	// names of the request headers the response varies on (in Vary, with empty values) and, as its
	// body, a random generation. Each variant is stored under a secondary key derived from the primary
	// key, the generation and the request's values of those names, so that replacing or deleting the
	// index makes every variant stored under the old one unreachable.
	FlagVaryIndex
	// FlagRevalidate marks a response that said must-revalidate, proxy-revalidate or no-cache: once
	// stale it must not be served without revalidation, whatever a request's max-stale says
	// (RFC 9111 §5.2.2.2).
	FlagRevalidate
)

// Errors returned by Parse. Every one of them wraps ErrInvalid.
var (
	ErrInvalid  = errors.New("entry: invalid encoded entry")
	ErrMagic    = wrap("not an entry (bad magic)")
	ErrVersion  = wrap("unsupported format version")
	ErrChecksum = wrap("checksum mismatch")
	ErrTrunc    = wrap("truncated")
	ErrHeader   = wrap("invalid header field")
	ErrTrailing = wrap("bytes after the head")
)

type parseError struct{ msg string }

func (e *parseError) Error() string { return "entry: " + e.msg }
func (e *parseError) Unwrap() error { return ErrInvalid }

func wrap(msg string) error { return &parseError{msg} }

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// VaryField is one request header named by the response's Vary, with the (normalised) value the request
// that produced the response had.
type VaryField struct {
	Name  string
	Value string
}

// Entry is a recorded response in decoded, owned form.
type Entry struct {
	Status   int
	Header   http.Header
	Body     []byte
	StoredAt time.Time // when the response was received (RFC 9111 §4.2.3's response_time)
	// Lifetime is the response's freshness lifetime (RFC 9111 §4.2.1), and InitialAge its corrected
	// initial age at StoredAt (§4.2.3): it is fresh until StoredAt + Lifetime - InitialAge.
	Lifetime   time.Duration
	InitialAge time.Duration
	// StaleWhileRevalidate and StaleIfError extend the usable life past freshness (RFC 5861), and Keep
	// is how long past freshness a stale entry is kept so it can be revalidated.
	StaleWhileRevalidate time.Duration
	StaleIfError         time.Duration
	Keep                 time.Duration
	// ComputeTime is how long the handler took to produce the response (XFetch's delta).
	ComputeTime time.Duration
	Flags       Flags
	Vary        []VaryField
}

// AppendHead appends the head of e (everything before the body) to dst; the body must follow it
// directly, and Seal must end the entry. e.Body and e.ComputeTime are ignored.
func AppendHead(dst []byte, e *Entry) []byte {
	dst = append(dst, Magic...)
	dst = append(dst, Version, byte(e.Flags))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(e.Status))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(e.StoredAt.UnixNano()))
	for _, d := range [...]time.Duration{e.Lifetime, e.InitialAge, e.StaleWhileRevalidate, e.StaleIfError, e.Keep, 0} {
		dst = binary.LittleEndian.AppendUint64(dst, uint64(d))
	}
	dst = binary.AppendUvarint(dst, uint64(len(e.Header)))
	for name, values := range e.Header {
		dst = appendString(dst, name)
		dst = binary.AppendUvarint(dst, uint64(len(values)))
		for _, v := range values {
			dst = appendString(dst, v)
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(e.Vary)))
	for _, f := range e.Vary {
		dst = appendString(dst, f.Name)
		dst = appendString(dst, f.Value)
	}
	return dst
}

// HeadLen returns the length of the head AppendHead writes for e, for sizing a buffer.
func HeadLen(e *Entry) int {
	n := fixedLen + 2*binary.MaxVarintLen64
	for name, values := range e.Header {
		n += len(name) + 2*binary.MaxVarintLen64
		for _, v := range values {
			n += len(v) + binary.MaxVarintLen64
		}
	}
	for _, f := range e.Vary {
		n += len(f.Name) + len(f.Value) + 2*binary.MaxVarintLen64
	}
	return n
}

// Seal ends an entry whose head (AppendHead) and body are in b: it sets the compute time and appends
// the checksum. b must start with the head.
func Seal(b []byte, compute time.Duration) []byte {
	binary.LittleEndian.PutUint64(b[computeOffset:], uint64(compute))
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// Encode returns the encoding of e.
func Encode(e *Entry) []byte {
	b := AppendHead(make([]byte, 0, HeadLen(e)+len(e.Body)+4), e)
	return Seal(append(b, e.Body...), e.ComputeTime)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// View is a parsed entry that aliases the bytes it was parsed from: nothing is copied, so the bytes must
// never change afterwards (headers copied out of it alias them too). Stores hand out immutable values,
// which makes this safe and keeps a cache hit free of per-header allocations.
type View struct {
	Status               int
	Flags                Flags
	StoredAt             time.Time
	Lifetime             time.Duration
	InitialAge           time.Duration
	StaleWhileRevalidate time.Duration
	StaleIfError         time.Duration
	Keep                 time.Duration
	ComputeTime          time.Duration
	Body                 []byte

	storedNs int64  // StoredAt in Unix nanoseconds, for cheap arithmetic on the hit path
	all      []byte // everything Parse was given
	headers  []byte // the header block, validated
	nHeaders int
	nValues  int
	vary     []byte // the vary block, validated
	nVary    int
	bodyAt   int // offset of the body in all
}

// Parse validates b completely and returns a View of it. It never panics and allocates nothing.
func Parse(b []byte) (View, error) {
	if len(b) < MinLen {
		if len(b) >= 4 && string(b[:4]) != Magic {
			return View{}, ErrMagic
		}
		return View{}, ErrTrunc
	}
	if string(b[:4]) != Magic {
		return View{}, ErrMagic
	}
	if b[4] != Version {
		return View{}, ErrVersion
	}
	if crc32.Checksum(b[:len(b)-4], castagnoli) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return View{}, ErrChecksum
	}
	return parseUnsealed(b, len(b)-4)
}

// ParseTrusted is Parse without the checksum, for bytes that this process encoded and that have not
// left it since (an in-process store's value, already parsed once with Parse): everything else is
// still validated, so it can never return a View that is unsafe to replay.
func ParseTrusted(b []byte) (View, error) {
	if len(b) < MinLen {
		return View{}, ErrTrunc
	}
	if string(b[:4]) != Magic {
		return View{}, ErrMagic
	}
	if b[4] != Version {
		return View{}, ErrVersion
	}
	return parseUnsealed(b, len(b)-4)
}

// ParseHead parses b, the head of an entry exactly as AppendHead wrote it, into a View with an empty
// body: the header a streamed response's clients are sent while its body is still being written.
func ParseHead(b []byte) (View, error) {
	if len(b) < fixedLen+2 {
		return View{}, ErrTrunc
	}
	if string(b[:4]) != Magic {
		return View{}, ErrMagic
	}
	if b[4] != Version {
		return View{}, ErrVersion
	}
	v, err := parseUnsealed(b, len(b))
	if err != nil {
		return View{}, err
	}
	if len(v.Body) != 0 {
		return View{}, ErrTrailing
	}
	v.Body = nil
	return v, nil
}

// parseUnsealed parses the head of b and takes b[head:end] as the body.
func parseUnsealed(b []byte, end int) (View, error) {
	var v View
	body := b[:end]
	v.Flags = Flags(b[5])
	v.Status = int(binary.LittleEndian.Uint16(b[6:]))
	if v.Status < 100 || v.Status > 999 {
		return v, wrap("invalid status")
	}
	v.storedNs = int64(binary.LittleEndian.Uint64(b[8:]))
	v.StoredAt = time.Unix(0, v.storedNs)
	durations := [...]*time.Duration{&v.Lifetime, &v.InitialAge, &v.StaleWhileRevalidate, &v.StaleIfError, &v.Keep, &v.ComputeTime}
	for i, d := range durations {
		*d = time.Duration(binary.LittleEndian.Uint64(b[16+8*i:]))
		if *d < 0 {
			return v, wrap("negative duration")
		}
	}

	r := reader{b: body, off: fixedLen}
	hstart := r.off
	nh, ok := r.count()
	if !ok {
		return v, ErrTrunc
	}
	for range nh {
		name, ok := r.bytes()
		if !ok {
			return v, ErrTrunc
		}
		if !validName(name) {
			return v, ErrHeader
		}
		nv, ok := r.count()
		if !ok {
			return v, ErrTrunc
		}
		for range nv {
			val, ok := r.bytes()
			if !ok {
				return v, ErrTrunc
			}
			if !validValue(val) {
				return v, ErrHeader
			}
		}
		v.nValues += nv
	}
	v.headers, v.nHeaders = body[hstart:r.off], nh

	vstart := r.off
	nvary, ok := r.count()
	if !ok {
		return v, ErrTrunc
	}
	for range nvary {
		name, ok1 := r.bytes()
		_, ok2 := r.bytes()
		if !ok1 || !ok2 {
			return v, ErrTrunc
		}
		if !validName(name) {
			return v, ErrHeader
		}
	}
	v.vary, v.nVary = body[vstart:r.off], nvary
	v.all = b
	v.bodyAt = r.off
	v.Body = body[r.off:len(body):len(body)]
	return v, nil
}

// Layout is where a parsed entry's parts lie in its bytes, with its fixed fields: enough to rebuild its
// View from the same bytes without parsing them again, and without holding on to them.
type Layout struct {
	v                  View // the fixed fields; its slices are nil
	hs, he, vs, ve, bs int
	// fields lists, per header, its name's offset and length and its number of values, then each value's
	// offset and length, all relative to the bytes: CopyHeader then needs no varint decoding.
	fields []int32
	// CacheStatus reports that the entry records a Cache-Status of its own (from caches nearer the
	// origin), which a replay adds to rather than replaces.
	CacheStatus bool
}

// Layout returns v's layout.
func (v *View) Layout() Layout {
	l := Layout{v: *v}
	l.v.all, l.v.headers, l.v.vary, l.v.Body = nil, nil, nil, nil
	base := func(p []byte) int {
		if len(p) == 0 {
			return 0
		}
		return int(uintptr(unsafe.Pointer(unsafe.SliceData(p))) - uintptr(unsafe.Pointer(unsafe.SliceData(v.all))))
	}
	l.hs, l.he = base(v.headers), base(v.headers)+len(v.headers)
	l.vs, l.ve = base(v.vary), base(v.vary)+len(v.vary)
	l.bs = v.bodyAt
	r := reader{b: v.headers}
	nh, _ := r.count()
	for range nh {
		name, _ := r.bytes()
		nv, _ := r.count()
		l.fields = append(l.fields, int32(base(name)), int32(len(name)), int32(nv))
		if string(name) == "Cache-Status" {
			l.CacheStatus = true
		}
		for range nv {
			val, _ := r.bytes()
			l.fields = append(l.fields, int32(base(val)), int32(len(val)))
		}
	}
	if len(v.all) > 1<<31-1 {
		l.fields = nil // offsets would not fit: CopyHeaderFrom parses instead
	}
	return l
}

// CopyHeaderFrom is v.CopyHeader for a View rebuilt from l: it takes the fields' places from l instead
// of decoding them again.
func (l *Layout) CopyHeaderFrom(v *View, h http.Header) {
	if l.fields == nil || v.nHeaders == 0 {
		v.CopyHeader(h)
		return
	}
	b := v.all
	values := make([]string, v.nValues)
	vi := 0
	for i := 0; i < len(l.fields); {
		name := aliasString(b[l.fields[i] : l.fields[i]+l.fields[i+1]])
		nv := int(l.fields[i+2])
		i += 3
		first := vi
		for range nv {
			values[vi] = aliasString(b[l.fields[i] : l.fields[i]+l.fields[i+1]])
			vi++
			i += 2
		}
		h[name] = values[first:vi:vi]
	}
}

// ViewOf rebuilds the View of b from its Layout. b must be the very bytes the layout was taken from
// (the same memory, unchanged): nothing is validated again.
func (l *Layout) ViewOf(b []byte) View {
	v := l.v
	v.all = b
	v.headers = b[l.hs:l.he:l.he]
	v.vary = b[l.vs:l.ve:l.ve]
	end := len(b) - 4
	v.Body = b[l.bs:end:end]
	return v
}

// FreshUntil is when the entry stops being fresh: StoredAt + Lifetime - InitialAge.
func (v *View) FreshUntil() time.Time { return v.StoredAt.Add(v.Lifetime - v.InitialAge) }

// Age returns the entry's current age at now (RFC 9111 §4.2.3): its initial age plus its resident time.
func (v *View) Age(now time.Time) time.Duration { return v.InitialAge + max(0, now.Sub(v.StoredAt)) }

// UsableUntil is when the entry stops being of any use: its freshness plus the longest of its
// stale-while-revalidate, stale-if-error and keep windows.
func (v *View) UsableUntil() time.Time {
	return v.FreshUntil().Add(max(v.StaleWhileRevalidate, v.StaleIfError, v.Keep))
}

// FreshUntilNs is FreshUntil in Unix nanoseconds.
func (v *View) FreshUntilNs() int64 { return v.storedNs + int64(v.Lifetime-v.InitialAge) }

// UsableUntilNs is UsableUntil in Unix nanoseconds.
func (v *View) UsableUntilNs() int64 {
	return v.FreshUntilNs() + int64(max(v.StaleWhileRevalidate, v.StaleIfError, v.Keep))
}

// AgeAt is Age at nowNs, a time in Unix nanoseconds.
func (v *View) AgeAt(nowNs int64) time.Duration {
	return v.InitialAge + time.Duration(max(0, nowNs-v.storedNs))
}

// BodyOffset returns where the body starts in Raw.
func (v *View) BodyOffset() int { return v.bodyAt }

// Decode parses b and returns an owned Entry that does not alias b.
func Decode(b []byte) (*Entry, error) {
	v, err := Parse(b)
	if err != nil {
		return nil, err
	}
	e := &Entry{
		Status: v.Status, Flags: v.Flags, StoredAt: v.StoredAt, Lifetime: v.Lifetime, InitialAge: v.InitialAge,
		StaleWhileRevalidate: v.StaleWhileRevalidate, StaleIfError: v.StaleIfError, Keep: v.Keep,
		ComputeTime: v.ComputeTime, Header: make(http.Header, v.nHeaders),
		Body: append([]byte(nil), v.Body...),
	}
	v.CopyHeader(e.Header)
	v.EachVary(func(name, value []byte) bool {
		e.Vary = append(e.Vary, VaryField{Name: string(name), Value: string(value)})
		return true
	})
	return e, nil
}

// CopyHeader sets every recorded header in h, replacing values h already has under the same names.
// Names and values are strings that alias the parsed bytes (which the Store contract makes immutable),
// so it allocates once whatever the number of headers: the slice that holds all values. Each header's
// slice has its capacity capped, so appending to one cannot clobber another.
func (v *View) CopyHeader(h http.Header) {
	if v.nHeaders == 0 {
		return
	}
	values := make([]string, v.nValues)
	r := reader{b: v.headers}
	nh, _ := r.count()
	vi := 0
	for range nh {
		name, _ := r.bytes()
		nv, _ := r.count()
		first := vi
		for range nv {
			val, _ := r.bytes()
			values[vi] = aliasString(val)
			vi++
		}
		h[aliasString(name)] = values[first:vi:vi]
	}
}

// aliasString returns a string that shares b's memory. b must never change afterwards.
func aliasString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// HeaderValue returns the first value recorded for the canonical header name, without allocating.
func (v *View) HeaderValue(name string) ([]byte, bool) {
	r := reader{b: v.headers}
	nh, _ := r.count()
	for range nh {
		n, _ := r.bytes()
		nv, _ := r.count()
		match := string(n) == name
		for i := range nv {
			val, _ := r.bytes()
			if match && i == 0 {
				return val, true
			}
		}
	}
	return nil, false
}

// EachVary calls fn with each Vary field's name and recorded request value until fn returns false.
func (v *View) EachVary(fn func(name, value []byte) bool) {
	r := reader{b: v.vary}
	n, _ := r.count()
	for range n {
		name, _ := r.bytes()
		val, _ := r.bytes()
		if !fn(name, val) {
			return
		}
	}
}

// Raw returns the bytes the View was parsed from.
func (v *View) Raw() []byte { return v.all }

// HasVary reports whether the response varied on request headers.
func (v *View) HasVary() bool { return v.nVary > 0 }

// reader walks a byte slice, refusing lengths that run past its end.
type reader struct {
	b   []byte
	off int
}

// count reads a uvarint that counts or measures something in the rest of the input; anything larger
// than the remaining bytes cannot be honest and is refused, which bounds every loop and allocation.
func (r *reader) count() (int, bool) {
	x, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 || x > uint64(len(r.b)-r.off-n) {
		return 0, false
	}
	r.off += n
	return int(x), true
}

func (r *reader) bytes() ([]byte, bool) {
	n, ok := r.count()
	if !ok {
		return nil, false
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s, true
}

// validName reports whether b is a non-empty RFC 9110 token.
func validName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c >= 0x80 || !isTokenChar[c] {
			return false
		}
	}
	return true
}

// validValue refuses the bytes that would let a value break out of its header line.
func validValue(b []byte) bool {
	for _, c := range b {
		if c == '\r' || c == '\n' || c == 0 {
			return false
		}
	}
	return true
}

var isTokenChar = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()
