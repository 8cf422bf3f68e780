package stampede

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/seed-a1426414/stampede/internal/httpcache"
)

// Default limits. Each can be changed with the option named beside it.
const (
	DefaultMaxBodyBytes    = 8 << 20          // WithMaxBodyBytes
	DefaultKeyBodyLimit    = 1 << 20          // WithKeyBodyLimit
	DefaultComputeTimeout  = 30 * time.Second // WithComputeTimeout
	DefaultPassTTL         = 10 * time.Second // WithPassTTL
	DefaultStoreTimeout    = 500 * time.Millisecond
	DefaultKeyPrefix       = "stampede"       // WithKeyPrefix
	DefaultKeyVersion      = "1"              // WithKeyVersion
	DefaultKeep            = 10 * time.Minute // WithKeep
	defaultBreakerFailures = 5
	defaultBreakerBackoff  = time.Second
)

// DefaultNeverStoreHeaders are the response headers that are never recorded unless WithNeverStoreHeaders
// replaces the list: they describe one client's request (CORS, rate limits), not the resource. A trailing
// "*" matches a prefix. Hop-by-hop headers and Set-Cookie are never recorded whatever the list says.
var DefaultNeverStoreHeaders = []string{"Access-Control-*", "X-Ratelimit-*"}

// Option configures a [Cache] (and a [Loader] or a [Stampede], for the options that are not about HTTP).
// Options are applied in order; later ones win.
//
// One rule holds for the value of every option: the zero value (0, "", nil, no names) means the default
// stated in the option's doc, and so do the zero parts of an option that takes two values
// (WithCircuitBreaker(0, 0) is the default breaker, WithMinUses(3, 0) three uses in the default window).
// A value that cannot work (a negative size or duration, an unknown policy, a name that is not an HTTP
// token) panics when the middleware is built, with a message starting "stampede: ", never while serving.
// For some options the default is "off" (WithStaleWhileRevalidate, WithEarlyRefresh,
// WithFleetCoalescing, ...), so their zero value turns them off; the ttl given to [New] and [WithTTL](0)
// mean "store nothing" (coalesce only), as in go-chi/stampede.
type Option func(*config)

// config is a Cache's settings, fixed once New returns.
type config struct {
	ttl            time.Duration
	skipCache      bool
	statusTTL      func(status int) time.Duration
	keyHeaders     []string // canonical names, in the order given
	keyBody        bool
	methods        map[string]bool
	maxBodyBytes   int64
	keyBodyLimit   int64
	neverStore     []string // canonical; a trailing "*" is a prefix match
	computeTimeout time.Duration
	passTTL        time.Duration
	storeTimeout   time.Duration
	keyPrefix      string
	keyVersion     string
	breakerFails   int
	breakerBackoff time.Duration
	keyFunc        KeyFunc
	// keyFuncCredential: keyFunc keys per credential (WithCredentialKeyFunc); WithKeyFunc clears it.
	keyFuncCredential bool
	name              string

	staleWhileRevalidate time.Duration
	staleIfError         time.Duration
	maxAgePolicy         MaxAgePolicy
	honorRequestCC       bool
	xfetchBeta           float64
	minUses              int
	minUsesWindow        time.Duration
	cacheStatusName      string
	clock                func() time.Time
	customClock          bool          // WithClock gave the clock
	fleetLease           time.Duration // 0: fleet coalescing off
	keep                 time.Duration
	targets              []string   // targeted Cache-Control fields (RFC 9213), canonical, in precedence order
	noXCache             bool       // WithoutXCache: Cache-Status alone says how a response was served
	observers            []Observer // WithObserver
	storeTimings         bool       // WithStoreTimings: store calls are timed into Snapshot.StoreTimes
}

func defaultConfig() config {
	return config{
		methods:        map[string]bool{},
		maxBodyBytes:   DefaultMaxBodyBytes,
		keyBodyLimit:   DefaultKeyBodyLimit,
		neverStore:     canonicalList(DefaultNeverStoreHeaders),
		computeTimeout: DefaultComputeTimeout,
		passTTL:        DefaultPassTTL,
		storeTimeout:   DefaultStoreTimeout,
		keyPrefix:      DefaultKeyPrefix,
		keyVersion:     DefaultKeyVersion,
		breakerFails:   defaultBreakerFailures,
		breakerBackoff: defaultBreakerBackoff,
		minUses:        1,
		minUsesWindow:  time.Minute,
		clock:          time.Now,
		keep:           DefaultKeep,
		targets:        []string{httpcache.CDNCacheControl},
	}
}

// WithTTL sets how long a storable response is kept; the default is the ttl given to [Handler] or [New].
// Zero means coalesce only: nothing is stored.
func WithTTL(d time.Duration) Option {
	return func(c *config) { c.ttl = d }
}

// WithSkipCache(true) makes the middleware coalesce concurrent requests without storing anything;
// the default is false.
func WithSkipCache(skip bool) Option {
	return func(c *config) { c.skipCache = skip }
}

// WithHTTPStatusTTL decides the TTL from the response status; by default the handler TTL applies to the
// statuses RFC 9110 §15.1 calls heuristically cacheable (200, 203, 204, 300, 301, 308, 404, 405, 410, 414,
// 501) and zero, meaning "do not store", to every other status. A zero or negative result means do not
// store; the response is still shared with the requests waiting for it.
func WithHTTPStatusTTL(fn func(status int) time.Duration) Option {
	return func(c *config) { c.statusTTL = fn }
}

// WithHTTPCacheKeyRequestHeaders adds the values of these request headers to the key; by default no
// header is keyed. Names are case-insensitive; all values of a header count, in order. Keying
// Authorization (or Cookie) gives each credential its own cache entry.
func WithHTTPCacheKeyRequestHeaders(names []string) Option {
	return func(c *config) { c.keyHeaders = canonicalList(names) }
}

// WithHTTPCacheKeyRequestBody(true) adds a digest of the request body to the key of every coalesced
// request; by default only methods other than GET and HEAD (see [WithMethods]) key their body.
func WithHTTPCacheKeyRequestBody(on bool) Option {
	return func(c *config) { c.keyBody = on }
}

// WithMethods coalesces and caches the methods listed besides GET and HEAD, which always are; by default
// no other method is. A method listed (an idempotent POST search API, say) has its body digest added to
// the key, and its responses do not invalidate anything (RFC 9111 §4.4 is for unsafe methods, and
// listing one says it is not). Only list methods whose handlers are safe to run once for many identical
// requests.
func WithMethods(methods ...string) Option {
	return func(c *config) {
		c.methods = make(map[string]bool, len(methods))
		for _, m := range methods {
			if m = strings.ToUpper(m); m != http.MethodGet && m != http.MethodHead {
				c.methods[m] = true
			}
		}
	}
}

// serves reports whether requests with method are coalesced and cached.
func (c *config) serves(method string) bool {
	return method == http.MethodGet || method == http.MethodHead || (len(c.methods) > 0 && c.methods[method])
}

// WithMaxBodyBytes sets the largest response body that is shared or stored; the default is 8 MiB
// ([DefaultMaxBodyBytes]). A larger response still reaches its own client in full, streamed; waiting
// requests run the handler themselves.
func WithMaxBodyBytes(n int64) Option {
	return func(c *config) { c.maxBodyBytes = n }
}

// WithKeyBodyLimit sets the largest request body that is read into the key; the default is 1 MiB
// ([DefaultKeyBodyLimit]). A request with a larger keyed body passes through to the handler, which reads
// the whole body unchanged.
func WithKeyBodyLimit(n int64) Option {
	return func(c *config) { c.keyBodyLimit = n }
}

// WithNeverStoreHeaders replaces the list of response headers that are never recorded, shared or stored;
// the default is [DefaultNeverStoreHeaders]. A trailing "*" matches a prefix. Hop-by-hop headers and
// Set-Cookie are never recorded, whatever this list says.
func WithNeverStoreHeaders(names []string) Option {
	return func(c *config) { c.neverStore = canonicalList(names) }
}

// WithComputeTimeout bounds one run of the handler; the default is 30 s ([DefaultComputeTimeout]). The run
// uses a context detached from the first client's, so that client leaving does not cancel it for the others.
func WithComputeTimeout(d time.Duration) Option {
	return func(c *config) { c.computeTimeout = d }
}

// WithPassTTL sets how long a key whose response could not be shared (private, Set-Cookie, streamed, too
// large) goes straight to the handler instead of queueing (hit-for-pass); the default is 10 s
// ([DefaultPassTTL]).
func WithPassTTL(d time.Duration) Option {
	return func(c *config) { c.passTTL = d }
}

// WithStoreTimeout bounds every store call; the default is 500 ms ([DefaultStoreTimeout]). A call that
// takes longer counts as a miss (or a failed write) and towards opening the circuit breaker.
func WithStoreTimeout(d time.Duration) Option {
	return func(c *config) { c.storeTimeout = d }
}

// WithCircuitBreaker sets after how many consecutive store failures the store is skipped, and for how long
// before one request probes it again; the default is 5 failures and 1 s (a zero for either means its
// default). The back-off stays the same while probes fail, so a recovered store is used again within one
// back-off.
func WithCircuitBreaker(failures int, backoff time.Duration) Option {
	return func(c *config) { c.breakerFails, c.breakerBackoff = failures, backoff }
}

// WithKeyPrefix sets the first part of every store key; the default is "stampede" ([DefaultKeyPrefix]).
// Use one prefix per application sharing a store.
func WithKeyPrefix(prefix string) Option {
	return func(c *config) { c.keyPrefix = prefix }
}

// WithKeyVersion sets the version part of every store key; the default is "1" ([DefaultKeyVersion]), and
// "" means the default too.
// Changing it invalidates everything stored at once (old entries expire by their TTL).
func WithKeyVersion(version string) Option {
	return func(c *config) { c.keyVersion = version }
}

// WithKeyFunc adds the result of fn to every key, for example a tenant id; by default nothing is added.
// An error from fn makes the request pass through to the handler. [HandlerWithKey] is the shorthand.
func WithKeyFunc(fn KeyFunc) Option {
	return func(c *config) { c.keyFunc, c.keyFuncCredential = fn, false }
}

// WithCredentialKeyFunc is [WithKeyFunc] with fn's promise that its result identifies the caller's
// credential (see [CredentialKeyFunc]); by default no key function is set. Requests with Authorization
// are then shared and stored within their key, as when Authorization is a key header.
func WithCredentialKeyFunc(fn CredentialKeyFunc) Option {
	return func(c *config) { c.keyFunc, c.keyFuncCredential = KeyFunc(fn), fn != nil }
}

// WithStaleWhileRevalidate keeps serving an expired entry for d after it expires, at once, while one
// request refreshes it in the background (RFC 5861 §3); the default is 0 (off). A response's own
// stale-while-revalidate directive overrides d for that response. Entries are stored for their TTL plus
// the longer stale window.
func WithStaleWhileRevalidate(d time.Duration) Option {
	return func(c *config) { c.staleWhileRevalidate = d }
}

// WithStaleIfError serves an expired entry for d after it expires when the handler, asked to refresh it,
// answers 5xx or panics (RFC 5861 §4); the default is 0 (off). A response's own stale-if-error directive
// overrides d for that response.
func WithStaleIfError(d time.Duration) Option {
	return func(c *config) { c.staleIfError = d }
}

// WithMaxAgePolicy says what a response's s-maxage and max-age do to its TTL; the default is
// MaxAgeOverride (they replace the handler TTL, s-maxage first, as in a shared cache).
func WithMaxAgePolicy(p MaxAgePolicy) Option {
	return func(c *config) { c.maxAgePolicy = p }
}

// WithHonorRequestCacheControl(true) lets a client's Cache-Control: no-cache or max-age=0 force a
// revalidation with the handler (still coalesced); the default is false, so that no client can force load
// on the origin. A request's no-store always passes it through.
func WithHonorRequestCacheControl(on bool) Option {
	return func(c *config) { c.honorRequestCC = on }
}

// WithEarlyRefresh turns on probabilistic early refresh (XFetch, VLDB 2015) with the given beta; the
// default is 0 (off) and 1 is the paper's recommended value. A hit close to expiry refreshes the entry in
// the background with a probability that grows as expiry nears and with how long the handler took, so a
// hot key is refreshed by one request before it expires instead of missing for everyone at once.
func WithEarlyRefresh(beta float64) Option {
	return func(c *config) { c.xfetchBeta = beta }
}

// WithMinUses stores a response only once its key was requested n times within window (nginx's
// proxy_cache_min_uses); the default is 1 (store at once), in a window of a minute when window is zero.
// Until then responses are still coalesced. Uses are counted in a fixed 1 MiB sketch, whatever the
// number of distinct URLs: every use within the last window counts (some up to two windows old may
// too), and a flood of distinct keys makes keys admitted early, never late.
func WithMinUses(n int, window time.Duration) Option {
	return func(c *config) { c.minUses, c.minUsesWindow = n, window }
}

// WithCacheStatusName sets the cache name in the Cache-Status header (RFC 9211); the default is
// "stampede".
func WithCacheStatusName(name string) Option {
	return func(c *config) { c.cacheStatusName = name }
}

// WithClock replaces time.Now for every freshness decision (tests, simulations); the default is time.Now.
// Stores keep their own clocks: a memory store still expires entries in real time.
func WithClock(now func() time.Time) Option {
	return func(c *config) { c.clock, c.customClock = now, now != nil }
}

// WithFleetCoalescing runs the handler once per key across every replica sharing the store, not just
// once per process; the default is off. It needs a store that offers leases (backends/redisstore, or
// backends/tieredstore over it); with any other store it does nothing, and the Cache logs a warning
// once, when it is built. On a miss the process's leader
// takes the key's lease in the store for lease; the holder runs the handler, stores the response and
// releases the lease, waking the other replicas' leaders, which then replay the stored response. Choose
// lease above the handler's slowest normal run: a holder still running when it expires is taken over by
// another replica, and its own late write is refused. A store error falls back to per-process
// coalescing, never to an error. Background refreshes do not take leases.
func WithFleetCoalescing(lease time.Duration) Option {
	return func(c *config) { c.fleetLease = lease }
}

// WithKeep keeps a stored response for d past its freshness when it has a validator (ETag or
// Last-Modified), so that the next request for it revalidates it with a conditional request (RFC 9111
// §4.3) instead of fetching it whole; the default is 10 minutes ([DefaultKeep]), zero means the default
// too. Kept entries count against the store's budget like any other. A response without a validator is
// kept only for its stale windows (see [WithStaleWhileRevalidate], [WithStaleIfError]).
func WithKeep(d time.Duration) Option {
	return func(c *config) { c.keep = d }
}

// WithTargetedCacheControl sets the targeted cache-control fields (RFC 9213) this cache obeys, in order
// of precedence; the default is CDN-Cache-Control alone. The first of them that a response carries with
// a valid value replaces its Cache-Control and Expires for this cache's policy (Cache-Control still
// reaches the clients). Name this cache's own field first to address it alone, for example
// WithTargetedCacheControl("Stampede-Cache-Control", "CDN-Cache-Control"); with no names, only
// Cache-Control counts.
func WithTargetedCacheControl(names ...string) Option {
	return func(c *config) {
		c.targets = canonicalList(names)
		if c.targets == nil {
			c.targets = []string{}
		}
	}
}

// WithoutXCache stops the middleware from adding X-Cache (HIT, MISS, COALESCED, BYPASS) to responses; by
// default every response carries it, as go-chi/stampede users and most caches' tooling expect.
// Cache-Status (RFC 9211), the standard field, is always sent and says all X-Cache says and more;
// without X-Cache a hit writes one header field fewer (about 15 bytes, and a little CPU).
func WithoutXCache() Option {
	return func(c *config) { c.noXCache = true }
}

// WithName names the cache in logs and stats; the default is the key prefix.
func WithName(name string) Option {
	return func(c *config) { c.name = name }
}

// validate panics, with a message starting "stampede: ", on a configuration that cannot work.
// It runs once, when the middleware is built, never while serving.
func (c *config) validate() {
	d := defaultConfig()
	for _, z := range []struct {
		v   *int64
		def int64
	}{{&c.maxBodyBytes, d.maxBodyBytes}, {&c.keyBodyLimit, d.keyBodyLimit}} {
		if *z.v == 0 {
			*z.v = z.def // zero means default
		}
	}
	for _, z := range []struct{ v, def *time.Duration }{
		{&c.computeTimeout, &d.computeTimeout}, {&c.passTTL, &d.passTTL}, {&c.storeTimeout, &d.storeTimeout},
	} {
		if *z.v == 0 {
			*z.v = *z.def
		}
	}
	if c.keyPrefix == "" {
		c.keyPrefix = d.keyPrefix
	}
	if c.cacheStatusName == "" {
		c.cacheStatusName = "stampede"
	}
	if c.clock == nil {
		c.clock = time.Now
	}
	if c.minUses == 0 {
		c.minUses = 1
	}
	if c.minUsesWindow == 0 {
		c.minUsesWindow = d.minUsesWindow
	}
	if c.breakerFails == 0 {
		c.breakerFails = d.breakerFails
	}
	if c.breakerBackoff == 0 {
		c.breakerBackoff = d.breakerBackoff
	}
	if c.keyVersion == "" {
		c.keyVersion = d.keyVersion
	}
	if c.keep == 0 {
		c.keep = d.keep
	}
	check := func(ok bool, format string, args ...any) {
		if !ok {
			panic(fmt.Sprintf("stampede: "+format, args...))
		}
	}
	check(c.ttl >= 0, "ttl must be >= 0, got %v", c.ttl)
	check(c.maxBodyBytes > 0, "WithMaxBodyBytes expects n > 0, got %d", c.maxBodyBytes)
	check(c.keyBodyLimit > 0, "WithKeyBodyLimit expects n > 0, got %d", c.keyBodyLimit)
	check(c.computeTimeout > 0, "WithComputeTimeout expects d > 0, got %v", c.computeTimeout)
	check(c.passTTL > 0, "WithPassTTL expects d > 0, got %v", c.passTTL)
	check(c.storeTimeout > 0, "WithStoreTimeout expects d > 0, got %v", c.storeTimeout)
	check(c.breakerFails > 0 && c.breakerBackoff > 0,
		"WithCircuitBreaker expects failures > 0 and backoff > 0, got %d, %v", c.breakerFails, c.breakerBackoff)
	check(c.fleetLease >= 0, "WithFleetCoalescing expects lease >= 0, got %v", c.fleetLease)
	check(c.staleWhileRevalidate >= 0 && c.staleIfError >= 0, "stale windows must be >= 0")
	check(c.maxAgePolicy >= MaxAgeOverride && c.maxAgePolicy <= MaxAgeIgnore, "unknown MaxAgePolicy %d", c.maxAgePolicy)
	check(c.xfetchBeta >= 0 && !math.IsNaN(c.xfetchBeta), "WithEarlyRefresh expects beta >= 0, got %v", c.xfetchBeta)
	check(c.minUses > 0 && c.minUsesWindow > 0, "WithMinUses expects n > 0 and window > 0, got %d, %v", c.minUses, c.minUsesWindow)
	check(validToken(c.cacheStatusName), "WithCacheStatusName expects an HTTP token, got %q", c.cacheStatusName)
	for m := range c.methods {
		check(m != http.MethodConnect && m != "", "WithMethods: method %q cannot be coalesced", m)
	}
	check(!strings.ContainsAny(c.keyPrefix+c.keyVersion, "{}"),
		"key prefix and version must not contain braces (they delimit the Redis Cluster hash tag)")
	for _, h := range c.keyHeaders {
		check(httpcache.ValidToken(h), "WithHTTPCacheKeyRequestHeaders: %q is not a header name", h)
	}
	for _, h := range c.neverStore {
		check(httpcache.ValidToken(strings.TrimSuffix(h, "*")), "WithNeverStoreHeaders: %q is not a header name (or a prefix ending in *)", h)
	}
	check(c.keep > 0, "WithKeep expects d >= 0, got %v", c.keep)
	for _, t := range c.targets {
		check(httpcache.ValidToken(t), "WithTargetedCacheControl: %q is not a field name", t)
	}
}

// canonicalList returns the names in canonical header form, keeping a trailing "*".
func canonicalList(names []string) []string {
	if len(names) == 0 {
		return nil
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n == "" {
			out = append(out, "")
			continue
		}
		if strings.HasSuffix(n, "*") {
			out = append(out, http.CanonicalHeaderKey(strings.TrimSuffix(n, "*"))+"*")
			continue
		}
		out = append(out, http.CanonicalHeaderKey(n))
	}
	return out
}

// validToken reports whether s is a non-empty RFC 9110 token, as a Cache-Status cache name must be.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, rune(c)) {
			return false
		}
	}
	return true
}
