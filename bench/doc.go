// Package bench is stampede's benchmark suite, a module of its own so that its dependencies (a progress
// bar, a plotting library) never reach the library's go.mod.
//
//	go run ./cmd/demo                 # the trace, with and without the middleware, in under a minute
//	go run ./cmd/bench -redis auto    # the full suite: writes ../BENCHMARKS.md and ../docs/*.png
//	go test -bench . -benchmem        # the hit-path benchmarks: bare, memory store, Redis store
//
// The hit benchmarks use the Redis at $STAMPEDE_BENCH_REDIS (host:port) when it is set, and otherwise
// start a redis-server of their own on a free loopback port when one is installed.
package bench
