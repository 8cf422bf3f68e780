// Command bench runs stampede's full benchmark suite and writes BENCHMARKS.md and the charts in docs/.
//
//	go run ./cmd/bench -redis auto        # everything, with a redis-server of its own
//	go run ./cmd/bench -redis host:port   # a Redis you run (keys are prefixed, nothing is flushed)
//	go run ./cmd/bench                    # no Redis configurations
//	go run ./cmd/bench -only trace,burst  # some parts
//
// The parts:
//   - trace: a Zipf trace of 200,000 requests run by 1,000, 10,000 and 100,000 concurrent workers against
//     an origin that sleeps 100 ms, in process, without the middleware and with each store;
//   - hit: a stored hit of 0 B, 1 KiB and 64 KiB from each store beside the bare handler (testing.Benchmark,
//     interleaved rounds, medians);
//   - burst: 10,000 concurrent clients on one cold key over real loopback HTTP;
//   - wrk: _example/simple's cached route against a route writing the same bytes with no middleware.
//
// All numbers of one report come from one run; the machine it ran on is printed at the top of the report.
package main

import "github.com/seed-a1426414/stampede/bench/internal/suite"

func main() { suite.Main() }
