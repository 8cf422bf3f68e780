package peers

import (
	"context"
	"net/http"
	"time"
)

// GoChiAPI is what the benchmarks call of go-chi/stampede. The bench module does not import it: the
// go-chi adapter program (internal/suite/testdata/gochiadapter), built outside the module against a
// checkout of go-chi/stampede, sets GoChi before it runs the suite.
type GoChiAPI struct {
	// Middleware returns go-chi/stampede's HTTP middleware, stampede.Handler with its default options
	// and ttl, on a new stand-in MapStore, and that store.
	Middleware func(ttl time.Duration) (func(http.Handler) http.Handler, *MapStore)
	// Do returns go-chi/stampede's function API on a new stand-in MapStore, bound to load:
	// NewStampede[[]byte](logger, store, WithTTL(ttl)).Do(ctx, key, load).
	Do func(ttl time.Duration, load func() ([]byte, error)) func(ctx context.Context, key string) ([]byte, error)
}

// GoChi is go-chi/stampede when the running program has it compiled in, and nil otherwise.
var GoChi *GoChiAPI

// GoChiLinked reports whether go-chi/stampede is compiled in.
func GoChiLinked() bool { return GoChi != nil }

// GoChiMiddleware is GoChi.Middleware, or nil without go-chi/stampede.
func GoChiMiddleware(ttl time.Duration) (func(http.Handler) http.Handler, *MapStore) {
	if GoChi == nil {
		return nil, nil
	}
	return GoChi.Middleware(ttl)
}

// GoChiDo is GoChi.Do, or nil without go-chi/stampede.
func GoChiDo(ttl time.Duration, load func() ([]byte, error)) func(ctx context.Context, key string) ([]byte, error) {
	if GoChi == nil {
		return nil
	}
	return GoChi.Do(ttl, load)
}
