// Package httpcache holds the HTTP caching rules the stampede middleware applies, as pure functions of
// header fields, status codes and times: it knows nothing of flights, stores or servers.
//
// Each rule cites the section of the RFC it implements:
//   - RFC 9111 (HTTP Caching): storing (§3), freshness and age (§4.2), validation (§4.3), invalidation
//     (§4.4), the Cache-Control directives (§5.2), Age (§5.1) and Expires (§5.3);
//   - RFC 9110 (HTTP Semantics): dates (§5.6.7), conditional requests (§13), range requests (§14),
//     list-valued fields (§5.6.1) and the heuristically cacheable statuses (§15.1);
//   - RFC 9213 (Targeted HTTP Cache Control): CDN-Cache-Control and a cache's own targeted field;
//   - RFC 5861: stale-while-revalidate and stale-if-error.
//
// Bad input never panics: a directive, date, age or range that does not parse is treated the way the
// RFC says (ignored, stale, or "serve the whole representation"), and the parsers are fuzzed.
package httpcache
