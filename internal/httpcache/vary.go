package httpcache

import (
	"net/http"
	"slices"
	"strings"
)

// VaryNames returns the canonical request field names a response's Vary lists, without duplicates, and
// whether it lists "*" (RFC 9110 §12.5.5), which no request can match.
func VaryNames(h http.Header) (names []string, star bool) {
	for _, line := range h["Vary"] {
		for tok := range strings.SplitSeq(line, ",") {
			tok = strings.TrimSpace(tok)
			switch {
			case tok == "":
			case tok == "*":
				return nil, true
			default:
				name := http.CanonicalHeaderKey(tok)
				if !slices.Contains(names, name) {
					names = append(names, name)
				}
			}
		}
	}
	return names, false
}

// listFields are the request fields whose value is a comma-separated list by definition (RFC 9110
// §5.6.1 and the fields' own specifications), so that two requests whose values differ only in
// whitespace, empty members or how the members are split over field lines mean the same (RFC 9111 §4.1).
// Every other field is compared exactly as the handler sees it.
var listFields = map[string]bool{
	"Accept": true, "Accept-Charset": true, "Accept-Encoding": true, "Accept-Language": true,
	"Cache-Control": true, "Content-Language": true, "Expect": true, "Forwarded": true,
	"If-Match": true, "If-None-Match": true, "Pragma": true, "Prefer": true, "Te": true, "Via": true,
}

// IsListField reports whether the request field name (canonical) is list-valued by definition.
func IsListField(name string) bool { return listFields[name] }

// VaryValue is the value of the request field name (canonical) that a stored response's Vary is
// matched on (RFC 9111 §4.1). Two requests select the same variant exactly when their VaryValues are
// equal.
//
// A field that is absent gives "", one that is present a value starting with "\n". For a list-valued
// field (see [IsListField]) the members of all its lines are trimmed and joined with ","; empty members
// are dropped; in the Accept family whitespace inside a member (around ";" and "=") is removed too;
// Accept-Language and Accept-Charset, whose language tags and charsets are case-insensitive, are
// lower-cased; and Accept-Encoding, an unordered set of codings, is lower-cased and sorted. Order is
// otherwise kept: handlers commonly read it as preference. Any other field keeps every line exactly,
// in order, so "X-Tenant: ,acme" never selects the variant of "acme".
func VaryValue(h http.Header, name string) string {
	lines, ok := h[name]
	if !ok {
		return ""
	}
	if !listFields[name] {
		if len(lines) == 1 {
			return "\n" + lines[0]
		}
		return "\n" + strings.Join(lines, "\n")
	}
	accept := strings.HasPrefix(name, "Accept")
	var members []string
	for _, line := range lines {
		for m := range strings.SplitSeq(line, ",") {
			if accept {
				m = strings.Join(strings.Fields(m), "")
			} else {
				m = strings.TrimSpace(m)
			}
			if m != "" {
				members = append(members, m)
			}
		}
	}
	switch name {
	case "Accept-Encoding":
		for i, m := range members {
			members[i] = strings.ToLower(m)
		}
		slices.Sort(members)
	case "Accept-Language", "Accept-Charset":
		for i, m := range members {
			members[i] = strings.ToLower(m)
		}
	}
	return "\n" + strings.Join(members, ",")
}
