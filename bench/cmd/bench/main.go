// Command bench runs stampede's full benchmark suite and writes BENCHMARKS.md and the charts in docs/.
//
//	go run ./cmd/bench -redis auto        # everything, with a redis-server of its own
//	go run ./cmd/bench -redis host:port   # a Redis you run (keys are prefixed, nothing is flushed)
//	go run ./cmd/bench                    # no Redis configurations
//	go run ./cmd/bench -only trace,burst  # some parts
//	go run ./cmd/bench -gochi DIR         # also go-chi/stampede, from a checkout of it at DIR
//
// The parts:
//   - trace: a Zipf trace of 200,000 requests run by 1,000, 10,000 and 100,000 concurrent workers against
//     an origin that sleeps 100 ms, in process, without the middleware, behind the floor, go-chi/stampede
//     and stampede with each store;
//   - hit: a stored hit of 0 B, 1 KiB and 64 KiB from the floor, go-chi/stampede and each store beside the
//     bare handler (testing.Benchmark, interleaved rounds, medians);
//   - burst: 10,000 concurrent clients on one cold key over real loopback HTTP;
//   - wrk: _example/simple's cached route against a route writing the same bytes with no middleware, then
//     one server with a route per peer (bare, floor, go-chi/stampede, stampede), with the server's CPU
//     time per request;
//   - do: a function cache's Do on a cached key, the floor (singleflight + otter) and go-chi/stampede's.
//
// The floor (package internal/floor) is singleflight and a sync.Map of recorded responses: the cheapest
// middleware that answers the benchmarks correctly, and nothing to ship.
//
// go-chi/stampede (https://github.com/go-chi/stampede, measured at v0.9.1) is not a dependency of the
// bench module, and nothing in it imports go-chi/stampede. Given -gochi DIR, a checkout of it, the
// program writes an adapter (internal/suite/testdata/gochiadapter: this suite with go-chi/stampede
// plugged into package internal/peers) into a temporary module, builds it in a temporary Go workspace
// that uses the bench module, DIR and that module, and runs it with the same flags. Without -gochi the
// go-chi variants are skipped and the report says so. go-chi/stampede's in-memory backend,
// github.com/goware/cachestore-mem, is not on the Go module proxy: its variants run on a stand-in,
// internal/peers' MapStore, and are labelled "stand-in map store".
//
// Flags beyond the parts' sizes: -gochi DIR (above); -benchtime, the run time of each testing.Benchmark
// of the hit and do parts (1s; testing's syntax, so 100ms or 5000x); -hit-rounds, their interleaved
// rounds. -burst-server, -peer-server and -gochi-build-note are the program talking to itself.
//
// A short run, a couple of minutes, to check that everything works (its numbers mean little):
//
//	go run ./cmd/bench -gochi DIR -requests 20000 -workers 100,1000 -trace-rounds 1 -hit-rounds 1 \
//	    -benchtime 200ms -wrk-duration 1s -only trace,hit,wrk,do -out /tmp/BENCHMARKS.md -docs /tmp
//
// All numbers of one report come from one run; the machine it ran on is printed at the top of the report.
package main

import "github.com/seed-a1426414/stampede/bench/internal/suite"

func main() { suite.Main() }
