package stampede

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/seed-a1426414/stampede/internal/entry"
)

// cacheControl is the part of a Cache-Control field value (RFC 9111 §5.2) that decides sharing.
// Durations are in seconds; -1 means the directive was absent.
type cacheControl struct {
	noStore, noCache, private, public, mustRevalidate bool
	maxAge, sMaxAge                                   int64
	staleWhileRevalidate, staleIfError                int64
}

// parseCacheControl parses every Cache-Control field line in values. Directive names are
// case-insensitive; unknown directives are ignored; an argument that is not a non-negative integer where
// one is expected is ignored too. A qualified private="..." or no-cache="..." is treated as unqualified,
// the conservative reading for a shared cache.
func parseCacheControl(values []string) cacheControl {
	cc := cacheControl{maxAge: -1, sMaxAge: -1, staleWhileRevalidate: -1, staleIfError: -1}
	for _, line := range values {
		for line != "" {
			var d string
			d, line = nextDirective(line)
			name, arg, _ := strings.Cut(d, "=")
			name = strings.TrimSpace(name)
			arg = strings.Trim(strings.TrimSpace(arg), `"`)
			switch {
			case strings.EqualFold(name, "no-store"):
				cc.noStore = true
			case strings.EqualFold(name, "no-cache"):
				cc.noCache = true
			case strings.EqualFold(name, "private"):
				cc.private = true
			case strings.EqualFold(name, "public"):
				cc.public = true
			case strings.EqualFold(name, "must-revalidate"), strings.EqualFold(name, "proxy-revalidate"):
				cc.mustRevalidate = true
			case strings.EqualFold(name, "max-age"):
				cc.maxAge = seconds(arg, cc.maxAge)
			case strings.EqualFold(name, "s-maxage"):
				cc.sMaxAge = seconds(arg, cc.sMaxAge)
			case strings.EqualFold(name, "stale-while-revalidate"):
				cc.staleWhileRevalidate = seconds(arg, cc.staleWhileRevalidate)
			case strings.EqualFold(name, "stale-if-error"):
				cc.staleIfError = seconds(arg, cc.staleIfError)
			}
		}
	}
	return cc
}

// nextDirective splits off the first comma-separated directive, honouring quoted strings so a comma
// inside private="a,b" does not end it.
func nextDirective(s string) (d, rest string) {
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

func seconds(arg string, old int64) int64 {
	n, err := strconv.ParseInt(arg, 10, 64)
	if err != nil || n < 0 {
		return old
	}
	return n
}

// requestNoStore reports whether the request said Cache-Control: no-store, which makes it pass through.
func requestNoStore(h http.Header) bool {
	values := h["Cache-Control"]
	for _, v := range values {
		if strings.Contains(strings.ToLower(v), "no-store") {
			return parseCacheControl(values).noStore
		}
	}
	return false
}

// hopByHop are the headers that describe one connection (RFC 9110 §7.6.1), never stored or replayed.
var hopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true, "Proxy-Authorization": true,
	"Proxy-Connection": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

// recordable reports whether a response header may be recorded for other clients.
func (c *config) recordable(name string, connection []string) bool {
	if hopByHop[name] || strings.HasPrefix(name, "Proxy-") || name == "Set-Cookie" || name == "Set-Cookie2" {
		return false
	}
	for _, n := range c.neverStore {
		if p, ok := strings.CutSuffix(n, "*"); ok {
			if strings.HasPrefix(name, p) {
				return false
			}
		} else if n == name {
			return false
		}
	}
	for _, line := range connection { // headers the Connection field names are hop-by-hop too
		for tok := range strings.SplitSeq(line, ",") {
			if http.CanonicalHeaderKey(strings.TrimSpace(tok)) == name {
				return false
			}
		}
	}
	return true
}

// varyNames returns the request header names a response's Vary lists, canonical, and whether it lists
// "*" (the response then varies on something no cache can see and is never shared).
func varyNames(h http.Header) (names []string, star bool) {
	for _, line := range h["Vary"] {
		for tok := range strings.SplitSeq(line, ",") {
			tok = strings.TrimSpace(tok)
			switch tok {
			case "":
			case "*":
				return nil, true
			default:
				names = append(names, http.CanonicalHeaderKey(tok))
			}
		}
	}
	return names, false
}

// varyValue is the normalised value of a request header for Vary matching: field lines joined, list
// members trimmed, so "a,b" and "a, b" (or two field lines) match. Accept-Encoding, whose members are an
// unordered set of codings, is also lower-cased and sorted, so "gzip, br" and "br,gzip" share a variant.
func varyValue(h http.Header, name string) string {
	if name == "Accept-Encoding" {
		return encodingSet(h[name])
	}
	values := h[name]
	switch len(values) {
	case 0:
		return ""
	case 1:
		if !strings.ContainsAny(values[0], ", \t") {
			return values[0]
		}
	}
	var sb strings.Builder
	for _, line := range values {
		for tok := range strings.SplitSeq(line, ",") {
			tok = strings.TrimSpace(tok)
			if tok == "" {
				continue
			}
			if sb.Len() > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(tok)
		}
	}
	return sb.String()
}

// varyMatches reports whether request header h matches every recorded Vary field.
func varyMatches(h http.Header, fields []entry.VaryField) bool {
	for _, f := range fields {
		if varyValue(h, f.Name) != f.Value {
			return false
		}
	}
	return true
}

// viewVaryMatches is varyMatches for a stored entry, without decoding it.
func viewVaryMatches(h http.Header, v *entry.View) bool {
	ok := true
	v.EachVary(func(name, value []byte) bool {
		ok = varyValue(h, string(name)) == string(value)
		return ok
	})
	return ok
}

// encodingSet normalises Accept-Encoding field lines into a sorted, lower-case, comma-joined list.
func encodingSet(lines []string) string {
	var toks []string
	for _, line := range lines {
		for tok := range strings.SplitSeq(line, ",") {
			if tok = strings.ToLower(strings.Join(strings.Fields(tok), "")); tok != "" {
				toks = append(toks, tok)
			}
		}
	}
	slices.Sort(toks)
	return strings.Join(toks, ",")
}
