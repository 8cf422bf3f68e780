// Package bench is stampede's benchmark suite, a module of its own so that its dependencies (a progress
// bar, a plotting library) never reach the library's go.mod.
//
//	go run ./cmd/demo                 # the trace, with and without the middleware, in under a minute
//	go run ./cmd/bench -redis auto    # the full suite: writes ../BENCHMARKS.md and ../docs/*.png
//	go test -bench . -benchmem        # the hit-path benchmarks: bare, floor, memory store, Redis store
//
// The suite measures stampede beside two peers in the same run. The floor (internal/floor) is
// singleflight and a sync.Map of recorded responses: the least a caching middleware can cost, and not
// safe to ship. go-chi/stampede, the reference design, is measured from a checkout of it that you pass:
//
//	git clone -b v0.9.1 https://github.com/go-chi/stampede /tmp/go-chi-stampede
//	make bench GOCHI_STAMPEDE=/tmp/go-chi-stampede                # from the repository root
//	go run ./cmd/bench -redis auto -gochi /tmp/go-chi-stampede    # from here
//
// The bench module does not depend on go-chi/stampede: cmd/bench builds an adapter program
// (internal/suite/testdata/gochiadapter) against the checkout in a temporary Go workspace and lets it do
// the run. Its variants use a stand-in for github.com/goware/cachestore-mem (internal/peers.MapStore),
// which the Go module proxy does not serve. Without a checkout the report skips go-chi/stampede and says
// so. cmd/bench's documentation lists the flags and a short run that checks everything in minutes.
//
// The hit benchmarks use the Redis at $STAMPEDE_BENCH_REDIS (host:port) when it is set, and otherwise
// start a redis-server of their own on a free loopback port when one is installed.
package bench
