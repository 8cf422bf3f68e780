// Command gochiadapter is cmd/bench with go-chi/stampede (https://github.com/go-chi/stampede) compiled
// in. It is not part of the bench module, which does not depend on go-chi/stampede: internal/suite
// (gochi.go) embeds this file, writes it into a temporary module whose path lies under the bench
// module's (so that it may import the bench module's internal packages), builds it in a temporary Go
// workspace that uses that module, the bench module and a checkout of go-chi/stampede, and runs it with
// cmd/bench's flags.
//
// It plugs go-chi/stampede into package peers, on the stand-in map store (peers.MapStore: the module
// proxy does not serve go-chi's github.com/goware/cachestore-mem), and runs the suite.
package main

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	gochi "github.com/go-chi/stampede"
	cachestore "github.com/goware/cachestore2"

	"github.com/seed-a1426414/stampede/bench/internal/peers"
	"github.com/seed-a1426414/stampede/bench/internal/suite"
)

func main() {
	quiet := slog.New(slog.DiscardHandler) // go-chi/stampede logs only errors
	peers.GoChi = &peers.GoChiAPI{
		Middleware: func(ttl time.Duration) (func(http.Handler) http.Handler, *peers.MapStore) {
			store := peers.NewMapStore()
			return gochi.Handler(quiet, store, ttl), store
		},
		Do: func(ttl time.Duration, load func() ([]byte, error)) func(context.Context, string) ([]byte, error) {
			s := gochi.NewStampede(quiet, cachestore.OpenStore[[]byte](peers.NewMapStore()), gochi.WithTTL(ttl))
			fn := func() ([]byte, *time.Duration, error) {
				v, err := load()
				return v, nil, err
			}
			return func(ctx context.Context, key string) ([]byte, error) { return s.Do(ctx, key, fn) }
		},
	}
	suite.Main()
}
