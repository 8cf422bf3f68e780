package httpcache

import (
	"math"
	"net/http"
	"strings"
)

// DeltaState says what a delta-seconds directive argument was.
type DeltaState uint8

const (
	// Absent: the directive was not given.
	Absent DeltaState = iota
	// Valid: the directive was given with a usable argument, in Seconds.
	Valid
	// Invalid: the directive was given, but its argument is missing or malformed, or it was given more
	// than once with different arguments. RFC 9111 §4.2.1 lets a cache treat such a response as stale,
	// which is what this package does for the freshness directives.
	Invalid
)

// MaxDelta is the largest delta-seconds value kept: RFC 9111 §1.2.2 says a value that overflows is to
// be read as 2^31 (about 68 years), "or the greatest positive integer it can conveniently represent".
const MaxDelta = 1 << 31

// Delta is the argument of a delta-seconds directive such as max-age.
type Delta struct {
	Seconds int64 // meaningful when State is Valid; at most MaxDelta
	State   DeltaState
}

// Set reports whether the directive was given with a valid argument.
func (d Delta) Set() bool { return d.State == Valid }

// Directives are the Cache-Control directives of one message (RFC 9111 §5.2), request or response. A
// directive the message did not carry is false or Absent. Unknown directives are ignored (§5.2.3).
type Directives struct {
	NoStore         bool
	NoCache         bool     // unqualified no-cache, or a qualified one (see NoCacheFields)
	NoCacheFields   []string // canonical field names of a qualified no-cache="..." (§5.2.2.4)
	Private         bool     // unqualified private, or a qualified one (see PrivateFields)
	PrivateFields   []string // canonical field names of a qualified private="..." (§5.2.2.7)
	Public          bool
	MustRevalidate  bool
	ProxyRevalidate bool
	MustUnderstand  bool
	NoTransform     bool
	Immutable       bool
	OnlyIfCached    bool // request only (§5.2.1.7)

	MaxAge               Delta
	SMaxAge              Delta
	StaleWhileRevalidate Delta // RFC 5861 §3
	StaleIfError         Delta // RFC 5861 §4
	MinFresh             Delta // request only (§5.2.1.3)
	// MaxStale is the request's max-stale (§5.2.1.2); MaxStaleAny reports a max-stale without an
	// argument, which accepts a stale response of any age.
	MaxStale    Delta
	MaxStaleAny bool
}

// Revalidate reports whether a stale response may not be used without revalidation: must-revalidate or
// proxy-revalidate (a shared cache honours both, §5.2.2.2, §5.2.2.8), or no-cache, which forbids using it
// even while fresh.
func (d *Directives) Revalidate() bool { return d.MustRevalidate || d.ProxyRevalidate || d.NoCache }

// ParseCacheControl parses every Cache-Control field line in lines (RFC 9111 §5.2). Directive names are
// case-insensitive; arguments may be tokens or quoted strings (§5.2: recipients accept both forms). A
// delta-seconds argument that is not a non-negative integer, or a directive repeated with a different
// argument, makes that directive Invalid. Commas inside quoted strings do not end a directive.
func ParseCacheControl(lines []string) Directives {
	var d Directives
	for _, line := range lines {
		for line != "" {
			var item string
			item, line = nextListItem(line)
			name, arg, hasArg := strings.Cut(item, "=")
			name = strings.TrimSpace(name)
			if name == "" {
				continue
			}
			if hasArg {
				arg = unquote(strings.TrimSpace(arg))
			}
			d.apply(strings.ToLower(name), arg, hasArg)
		}
	}
	return d
}

// apply records one directive; name is lower-case.
func (d *Directives) apply(name, arg string, hasArg bool) {
	switch name {
	case "no-store":
		d.NoStore = true
	case "no-cache":
		d.NoCache = true
		if hasArg {
			d.NoCacheFields = appendFieldNames(d.NoCacheFields, arg)
		}
	case "private":
		d.Private = true
		if hasArg {
			d.PrivateFields = appendFieldNames(d.PrivateFields, arg)
		}
	case "public":
		d.Public = true
	case "must-revalidate":
		d.MustRevalidate = true
	case "proxy-revalidate":
		d.ProxyRevalidate = true
	case "must-understand":
		d.MustUnderstand = true
	case "no-transform":
		d.NoTransform = true
	case "immutable":
		d.Immutable = true
	case "only-if-cached":
		d.OnlyIfCached = true
	case "max-age":
		d.MaxAge = d.MaxAge.merge(arg, hasArg)
	case "s-maxage":
		d.SMaxAge = d.SMaxAge.merge(arg, hasArg)
	case "stale-while-revalidate":
		d.StaleWhileRevalidate = d.StaleWhileRevalidate.merge(arg, hasArg)
	case "stale-if-error":
		d.StaleIfError = d.StaleIfError.merge(arg, hasArg)
	case "min-fresh":
		d.MinFresh = d.MinFresh.merge(arg, hasArg)
	case "max-stale":
		if !hasArg {
			d.MaxStaleAny = true
			return
		}
		d.MaxStale = d.MaxStale.merge(arg, hasArg)
	}
}

// merge combines a repeated directive: the same argument twice is that argument; different ones, or a
// malformed one, make it Invalid (RFC 9111 §4.2.1: "either the first occurrence should be used or the
// response should be considered stale"; this package chooses stale).
func (d Delta) merge(arg string, hasArg bool) Delta {
	n, ok := ParseDeltaSeconds(arg)
	switch {
	case !hasArg || !ok:
		return Delta{State: Invalid}
	case d.State == Absent:
		return Delta{Seconds: n, State: Valid}
	case d.State == Valid && d.Seconds == n:
		return d
	}
	return Delta{State: Invalid}
}

// ParseDeltaSeconds parses a delta-seconds value (RFC 9111 §1.2.2): one or more digits. A value too
// large to represent is MaxDelta, as §1.2.2 requires.
func ParseDeltaSeconds(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < MaxDelta {
			n = n*10 + int64(c-'0')
		}
	}
	return min(n, MaxDelta), true
}

// nextListItem splits off the first comma-separated member of a field value, honouring quoted strings
// (RFC 9110 §5.6.4) so a comma inside private="a,b" does not end it.
func nextListItem(s string) (item, rest string) {
	inQuote := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if inQuote {
				i++
			}
		case '"':
			inQuote = !inQuote
		case ',':
			if !inQuote {
				return s[:i], s[i+1:]
			}
		}
	}
	return s, ""
}

// unquote returns the content of a quoted-string (RFC 9110 §5.6.4), with quoted-pairs resolved, or s
// unchanged when it is not quoted.
func unquote(s string) string {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return s
	}
	s = s[1 : len(s)-1]
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// appendFieldNames appends the canonical names of a comma-separated list of field names; members that
// are not field names are dropped (the directive itself still counts).
func appendFieldNames(dst []string, list string) []string {
	for name := range strings.SplitSeq(list, ",") {
		if name = strings.TrimSpace(name); ValidToken(name) {
			dst = append(dst, http.CanonicalHeaderKey(name))
		}
	}
	return dst
}

// CDNCacheControl is the targeted field of RFC 9213 meant for every CDN cache.
const CDNCacheControl = "Cdn-Cache-Control"

// ResponseDirectives returns the directives that set the caching policy of a response with header h
// (RFC 9213 §2.2): those of the first field of the cache's target list (canonical names, in order of
// precedence, such as its own field and then CDN-Cache-Control) that is present with a valid, non-empty
// value, else Cache-Control. targeted reports that a targeted field was used; the cache must then
// ignore Cache-Control and Expires for its policy.
func ResponseDirectives(h http.Header, targets []string) (d Directives, targeted bool) {
	for _, name := range targets {
		if lines := h[name]; lines != nil {
			if d, ok := ParseTargeted(lines); ok {
				return d, true
			}
		}
	}
	return ParseCacheControl(h["Cache-Control"]), false
}

// ParseTargeted parses a targeted cache-control field (RFC 9213 §2.1), a Structured Fields Dictionary
// (RFC 8941 §3.2) whose members are the Cache-Control directives: a bare key is true, max-age=60 an
// Integer, private="a, b" a String. ok is false when the value does not parse as a Dictionary or is
// empty, and then the field must be ignored (§2.1). A directive with a value of the wrong type is
// ignored, except that a delta-seconds directive with a non-Integer value is Invalid.
func ParseTargeted(lines []string) (d Directives, ok bool) {
	members, ok := parseDictionary(strings.Join(lines, ","))
	if !ok || len(members) == 0 {
		return Directives{}, false
	}
	for _, m := range members {
		switch m.kind {
		case sfTrue:
			d.apply(m.key, "", false)
		case sfInteger:
			if m.integer >= 0 {
				d.apply(m.key, m.raw, true)
			} else {
				d.apply(m.key, "-", true) // a negative delta is malformed
			}
		case sfString, sfToken:
			switch m.key {
			case "private", "no-cache":
				d.apply(m.key, m.raw, true)
			case "max-age", "s-maxage", "stale-while-revalidate", "stale-if-error", "min-fresh", "max-stale":
				d.apply(m.key, "-", true)
			}
		default: // False, decimals, byte sequences, inner lists: not a value any directive takes
			switch m.key {
			case "max-age", "s-maxage", "stale-while-revalidate", "stale-if-error", "min-fresh", "max-stale":
				d.apply(m.key, "-", true)
			case "private", "no-store":
				d.apply(m.key, "", false) // whatever its value says, the conservative reading
			}
		}
	}
	return d, true
}

// sfKind is the type of a Dictionary member's value, as far as targeted fields care.
type sfKind uint8

const (
	sfTrue sfKind = iota
	sfFalse
	sfInteger
	sfString
	sfToken
	sfOther // decimal, byte sequence, inner list
)

type sfMember struct {
	key     string
	kind    sfKind
	integer int64
	raw     string // the integer's digits, or the string's or token's content
}

// parseDictionary parses an RFC 8941 §4.2.2 Dictionary. Later members with the same key replace
// earlier ones (§3.2). Parameters are parsed and dropped. ok is false on any syntax error.
func parseDictionary(s string) (members []sfMember, ok bool) {
	p := sfParser{s: s}
	p.skipSP()
	if p.done() {
		return nil, true
	}
	for {
		key, ok := p.key()
		if !ok {
			return nil, false
		}
		m := sfMember{key: key, kind: sfTrue}
		if p.peek() == '=' {
			p.i++
			if !p.item(&m) {
				return nil, false
			}
		} else if !p.params() {
			return nil, false
		}
		replaced := false
		for i := range members {
			if members[i].key == key {
				members[i] = m
				replaced = true
			}
		}
		if !replaced {
			members = append(members, m)
		}
		p.skipOWS()
		if p.done() {
			return members, true
		}
		if p.peek() != ',' {
			return nil, false
		}
		p.i++
		p.skipOWS()
		if p.done() {
			return nil, false // a trailing comma
		}
	}
}

type sfParser struct {
	s string
	i int
}

func (p *sfParser) done() bool { return p.i >= len(p.s) }

func (p *sfParser) peek() byte {
	if p.done() {
		return 0
	}
	return p.s[p.i]
}

func (p *sfParser) skipSP() {
	for !p.done() && p.s[p.i] == ' ' {
		p.i++
	}
}

func (p *sfParser) skipOWS() {
	for !p.done() && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

// key parses an sf-key: lcalpha or "*", then lcalpha, digits, "_", "-", "." or "*".
func (p *sfParser) key() (string, bool) {
	start := p.i
	if c := p.peek(); !(c >= 'a' && c <= 'z') && c != '*' {
		return "", false
	}
	for !p.done() {
		c := p.s[p.i]
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.' || c == '*' {
			p.i++
			continue
		}
		break
	}
	return p.s[start:p.i], true
}

// item parses a member value: an Inner List or a bare item, then its parameters.
func (p *sfParser) item(m *sfMember) bool {
	if p.peek() == '(' {
		m.kind = sfOther
		p.i++
		for {
			p.skipSP()
			if p.peek() == ')' {
				p.i++
				return p.params()
			}
			var inner sfMember
			if !p.bare(&inner) || !p.params() {
				return false
			}
			if c := p.peek(); c != ' ' && c != ')' {
				return false
			}
		}
	}
	return p.bare(m) && p.params()
}

// params parses and drops ";key[=bare]" parameters.
func (p *sfParser) params() bool {
	for p.peek() == ';' {
		p.i++
		p.skipSP()
		if _, ok := p.key(); !ok {
			return false
		}
		if p.peek() == '=' {
			p.i++
			var v sfMember
			if !p.bare(&v) {
				return false
			}
		}
	}
	return true
}

// bare parses a bare item (RFC 8941 §4.2.3.1).
func (p *sfParser) bare(m *sfMember) bool {
	c := p.peek()
	switch {
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number(m)
	case c == '"':
		return p.str(m)
	case c == '*' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'):
		start := p.i
		p.i++
		for !p.done() {
			c := p.s[p.i]
			if isTchar(c) || c == ':' || c == '/' {
				p.i++
				continue
			}
			break
		}
		m.kind, m.raw = sfToken, p.s[start:p.i]
		return true
	case c == ':':
		end := strings.IndexByte(p.s[p.i+1:], ':')
		if end < 0 {
			return false
		}
		p.i += end + 2
		m.kind = sfOther
		return true
	case c == '?':
		if p.i+1 >= len(p.s) || (p.s[p.i+1] != '0' && p.s[p.i+1] != '1') {
			return false
		}
		m.kind = sfFalse
		if p.s[p.i+1] == '1' {
			m.kind = sfTrue
		}
		p.i += 2
		return true
	}
	return false
}

// number parses an Integer or a Decimal (RFC 8941 §4.2.4).
func (p *sfParser) number(m *sfMember) bool {
	neg := false
	if p.peek() == '-' {
		neg = true
		p.i++
	}
	start := p.i
	digits, decimal := 0, false
	for !p.done() {
		c := p.s[p.i]
		if c >= '0' && c <= '9' {
			digits++
			p.i++
			continue
		}
		if c == '.' && !decimal && digits > 0 && digits <= 12 {
			decimal = true
			p.i++
			continue
		}
		break
	}
	if digits == 0 || digits > 15 || p.s[p.i-1] == '.' {
		return false
	}
	if decimal {
		m.kind = sfOther
		return true
	}
	raw := p.s[start:p.i]
	var n int64
	for i := 0; i < len(raw); i++ {
		n = n*10 + int64(raw[i]-'0')
	}
	if n > math.MaxInt64/2 {
		return false
	}
	if neg {
		n = -n
	}
	m.kind, m.integer, m.raw = sfInteger, n, raw
	return true
}

// str parses a String (RFC 8941 §4.2.5): printable ASCII, with \" and \\ escapes only.
func (p *sfParser) str(m *sfMember) bool {
	p.i++ // the opening quote
	var b strings.Builder
	for !p.done() {
		c := p.s[p.i]
		p.i++
		switch {
		case c == '\\':
			if p.done() {
				return false
			}
			n := p.s[p.i]
			if n != '"' && n != '\\' {
				return false
			}
			b.WriteByte(n)
			p.i++
		case c == '"':
			m.kind, m.raw = sfString, b.String()
			return true
		case c < 0x20 || c > 0x7e:
			return false
		default:
			b.WriteByte(c)
		}
	}
	return false
}

// isTchar reports whether c may appear in a token (RFC 9110 §5.6.2).
func isTchar(c byte) bool {
	return c < 0x80 && tchar[c]
}

var tchar = func() (t [128]bool) {
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

// ValidToken reports whether s is a non-empty token (RFC 9110 §5.6.2), as a field name must be.
func ValidToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTchar(s[i]) {
			return false
		}
	}
	return true
}

// ValidFieldValue reports whether s may be sent as a field value: no CR, LF or NUL (RFC 9110 §5.5).
func ValidFieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\r' || c == '\n' || c == 0 {
			return false
		}
	}
	return true
}
