package stampede

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// settled returns the configuration opts give once validated, with its function fields cleared (they
// cannot be compared) after checking that validation left none it needs nil.
func settled(t *testing.T, opts ...Option) config {
	t.Helper()
	cfg := defaultConfig()
	cfg.ttl = time.Minute
	for _, o := range opts {
		o(&cfg)
	}
	cfg.validate()
	if cfg.clock == nil {
		t.Fatal("validate left no clock")
	}
	cfg.clock, cfg.statusTTL, cfg.keyFunc = nil, nil, nil
	return cfg
}

// TestOptionZeroMeansDefault: the one rule for option values (see [Option]): the zero value of every
// option, or of each part of a two-part option, gives exactly the default configuration.
func TestOptionZeroMeansDefault(t *testing.T) {
	t.Parallel()
	def := settled(t)
	zeros := map[string]Option{
		"WithMaxBodyBytes(0)":                  WithMaxBodyBytes(0),
		"WithKeyBodyLimit(0)":                  WithKeyBodyLimit(0),
		"WithComputeTimeout(0)":                WithComputeTimeout(0),
		"WithPassTTL(0)":                       WithPassTTL(0),
		"WithStoreTimeout(0)":                  WithStoreTimeout(0),
		"WithCircuitBreaker(0, 0)":             WithCircuitBreaker(0, 0),
		"WithKeyPrefix(\"\")":                  WithKeyPrefix(""),
		"WithKeyVersion(\"\")":                 WithKeyVersion(""),
		"WithKeyFunc(nil)":                     WithKeyFunc(nil),
		"WithCredentialKeyFunc(nil)":           WithCredentialKeyFunc(nil),
		"WithStaleWhileRevalidate(0)":          WithStaleWhileRevalidate(0),
		"WithStaleIfError(0)":                  WithStaleIfError(0),
		"WithMaxAgePolicy(0)":                  WithMaxAgePolicy(0),
		"WithHonorRequestCacheControl(false)":  WithHonorRequestCacheControl(false),
		"WithEarlyRefresh(0)":                  WithEarlyRefresh(0),
		"WithMinUses(0, 0)":                    WithMinUses(0, 0),
		"WithCacheStatusName(\"\")":            WithCacheStatusName(""),
		"WithClock(nil)":                       WithClock(nil),
		"WithFleetCoalescing(0)":               WithFleetCoalescing(0),
		"WithKeep(0)":                          WithKeep(0),
		"WithName(\"\")":                       WithName(""),
		"WithMethods()":                        WithMethods(),
		"WithHTTPStatusTTL(nil)":               WithHTTPStatusTTL(nil),
		"WithHTTPCacheKeyRequestHeaders(nil)":  WithHTTPCacheKeyRequestHeaders(nil),
		"WithHTTPCacheKeyRequestBody(false)":   WithHTTPCacheKeyRequestBody(false),
		"WithSkipCache(false)":                 WithSkipCache(false),
		"WithNeverStoreHeaders(default)":       WithNeverStoreHeaders(DefaultNeverStoreHeaders),
		"WithTargetedCacheControl(CDN)":        WithTargetedCacheControl("CDN-Cache-Control"),
		"WithCircuitBreaker(0, 1s) (one part)": WithCircuitBreaker(0, time.Second),
		"WithMinUses(1, 0) (one part)":         WithMinUses(1, 0),
	}
	for name, o := range zeros {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := settled(t, o); !reflect.DeepEqual(got, def) {
				t.Errorf("config differs from the default:\n got %+v\nwant %+v", got, def)
			}
		})
	}
	if got := settled(t, WithMinUses(3, 0)); got.minUses != 3 || got.minUsesWindow != def.minUsesWindow {
		t.Errorf("WithMinUses(3, 0): %d uses in %v, want 3 in the default %v", got.minUses, got.minUsesWindow, def.minUsesWindow)
	}
}

// TestOptionInvalidPanics: a value that cannot work panics when the cache is built, with a message
// starting "stampede: " that names the option.
func TestOptionInvalidPanics(t *testing.T) {
	t.Parallel()
	bad := map[string]struct {
		opt  Option
		want string
	}{
		"WithTTL(-1)":                  {WithTTL(-1), "ttl"},
		"WithMaxBodyBytes(-1)":         {WithMaxBodyBytes(-1), "WithMaxBodyBytes"},
		"WithKeyBodyLimit(-1)":         {WithKeyBodyLimit(-1), "WithKeyBodyLimit"},
		"WithComputeTimeout(-1)":       {WithComputeTimeout(-1), "WithComputeTimeout"},
		"WithPassTTL(-1)":              {WithPassTTL(-1), "WithPassTTL"},
		"WithStoreTimeout(-1)":         {WithStoreTimeout(-1), "WithStoreTimeout"},
		"WithCircuitBreaker(-1, 0)":    {WithCircuitBreaker(-1, 0), "WithCircuitBreaker"},
		"WithCircuitBreaker(0, -1)":    {WithCircuitBreaker(0, -1), "WithCircuitBreaker"},
		"WithFleetCoalescing(-1)":      {WithFleetCoalescing(-1), "WithFleetCoalescing"},
		"WithStaleWhileRevalidate(-1)": {WithStaleWhileRevalidate(-1), "stale"},
		"WithStaleIfError(-1)":         {WithStaleIfError(-1), "stale"},
		"WithMaxAgePolicy(99)":         {WithMaxAgePolicy(99), "MaxAgePolicy"},
		"WithEarlyRefresh(-1)":         {WithEarlyRefresh(-1), "WithEarlyRefresh"},
		"WithMinUses(-1, 0)":           {WithMinUses(-1, 0), "WithMinUses"},
		"WithMinUses(2, -1)":           {WithMinUses(2, -1), "WithMinUses"},
		"WithCacheStatusName(a b)":     {WithCacheStatusName("a b"), "WithCacheStatusName"},
		"WithMethods(CONNECT)":         {WithMethods("CONNECT"), "WithMethods"},
		"WithKeyPrefix({)":             {WithKeyPrefix("a{b"), "braces"},
		"WithKeep(-1)":                 {WithKeep(-1), "WithKeep"},
		"WithTargetedCacheControl(:)":  {WithTargetedCacheControl("a:b"), "WithTargetedCacheControl"},
		"WithHTTPCacheKeyRequestHeaders(\"\")": {WithHTTPCacheKeyRequestHeaders([]string{""}),
			"WithHTTPCacheKeyRequestHeaders"},
	}
	for name, tt := range bad {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			defer func() {
				msg, _ := recover().(string)
				if !strings.HasPrefix(msg, "stampede: ") || !strings.Contains(msg, tt.want) {
					t.Errorf("panic = %q, want a message starting with \"stampede: \" naming %q", msg, tt.want)
				}
			}()
			New(nil, nil, time.Minute, tt.opt)
		})
	}
}

// TestLoaderOptionRule: a loader's own options follow the same rule.
func TestLoaderOptionRule(t *testing.T) {
	t.Parallel()
	cfg := loaderConfig{config: defaultConfig()}
	WithLocalTTL(0).applyLoader(&cfg)
	WithCodec(nil).applyLoader(&cfg)
	WithRefreshBuffering(0, 0).applyLoader(&cfg)
	cfg.validate()
	if cfg.localTTL != DefaultLocalTTL || cfg.codec != JSON || cfg.bufSize != 0 {
		t.Errorf("zero loader options: local TTL %v, codec %v, buffer %d; want the defaults", cfg.localTTL, cfg.codec, cfg.bufSize)
	}
	for name, o := range map[string]LoaderOption{
		"WithLocalTTL(-1)":            WithLocalTTL(-1),
		"WithRefreshBuffering(-1, 0)": WithRefreshBuffering(-1, 0),
		"WithRefreshBuffering(1, -1)": WithRefreshBuffering(1, -1),
		"WithRefreshBuffering(1, 0)":  WithRefreshBuffering(1, 0), // without WithBatchLoad
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			defer func() {
				if msg, _ := recover().(string); !strings.HasPrefix(msg, "stampede: ") {
					t.Errorf("panic = %q, want a message starting with \"stampede: \"", msg)
				}
			}()
			c := loaderConfig{config: defaultConfig()}
			o.applyLoader(&c)
			c.validate()
		})
	}
}

// TestWithMethodsKeepsGET: listing another method adds it; GET and HEAD are always served.
func TestWithMethodsKeepsGET(t *testing.T) {
	t.Parallel()
	cfg := settled(t, WithMethods("post"))
	for m, want := range map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": false} {
		if got := cfg.serves(m); got != want {
			t.Errorf("WithMethods(\"post\") serves %s = %v, want %v", m, got, want)
		}
	}
}
