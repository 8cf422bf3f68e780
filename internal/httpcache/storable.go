package httpcache

import "net/http"

// Reason says why a response may not be shared with other clients or stored. The empty Reason means
// it may.
type Reason string

// Reasons a response is kept from other clients.
const (
	// OK: the response may be shared.
	OK Reason = ""
	// ReasonNoStore: Cache-Control no-store (RFC 9111 §5.2.2.5).
	ReasonNoStore Reason = "no-store"
	// ReasonPrivate: Cache-Control private, which a shared cache must not store (RFC 9111 §5.2.2.7).
	// A qualified private="field" is treated as unqualified: the conservative reading.
	ReasonPrivate Reason = "private"
	// ReasonAuthorization: the request carried Authorization and the response does not say public,
	// s-maxage or must-revalidate (RFC 9111 §3.5).
	ReasonAuthorization Reason = "authorization"
	// ReasonSetCookie: the response sets a cookie (Set-Cookie, or the obsolete Set-Cookie2). RFC 9111
	// allows storing it, but a cookie is one client's state: like Varnish's built-in policy, a shared
	// cache in front of an application does not replay it.
	ReasonSetCookie Reason = "set-cookie"
	// ReasonVaryStar: Vary: * says the response varies on something no cache can see (RFC 9110 §12.5.5).
	ReasonVaryStar Reason = "vary-star"
	// ReasonPartial: a 206, which is a part of a representation, never the whole (RFC 9111 §3.3).
	ReasonPartial Reason = "partial"
	// ReasonStatus: a status this cache does not understand under must-understand (RFC 9111 §5.2.2.3),
	// or one that is not final.
	ReasonStatus Reason = "status"
)

// Share decides whether a response may be given to clients other than the one it was made for: the
// requests collapsed onto it, and later ones through the store. d are the response's effective
// directives (see [ResponseDirectives]). authorization reports that the request carried an
// Authorization field that is not part of the cache key.
//
// It applies the conditions of RFC 9111 §3 that do not depend on freshness: no-store (which
// must-understand overrides for an understood status, §5.2.2.3), private, Authorization (§3.5), partial
// content, Vary: *, plus the cookie rule of [ReasonSetCookie]. Whether the response also has a lifetime
// worth storing is for the caller, with [ExplicitLifetime] and its heuristic.
func Share(status int, h http.Header, d *Directives, authorization bool) Reason {
	switch {
	case status < 200 || status > 999:
		return ReasonStatus
	case status == http.StatusPartialContent:
		return ReasonPartial
	case d.Private:
		return ReasonPrivate
	case d.MustUnderstand && !Understood(status):
		return ReasonStatus
	case d.NoStore && !d.MustUnderstand:
		return ReasonNoStore
	case h["Set-Cookie"] != nil || h["Set-Cookie2"] != nil:
		return ReasonSetCookie
	case authorization && !d.Public && !d.SMaxAge.Set() && !d.MustRevalidate:
		return ReasonAuthorization
	}
	if _, star := VaryNames(h); star {
		return ReasonVaryStar
	}
	return OK
}

// AuthShareable reports whether a response may be given to requests that carry Authorization
// (RFC 9111 §3.5): it says public, s-maxage or must-revalidate.
func AuthShareable(d *Directives) bool {
	return d.Public || d.SMaxAge.Set() || d.MustRevalidate
}
