// Command demo replays a Zipf request trace against a slow origin handler twice, without stampede and
// with it (in-memory store), and prints how many origin calls the middleware saved and how close it came
// to the fastest any cache could be. It needs no server and takes about half a minute on 2 cores, most of
// it the run without the middleware.
//
//	go run ./cmd/demo                              # 200,000 requests, 1,000 workers, 100 ms origin
//	go run ./cmd/demo -workers 10000 -sleep 20ms   # any other size
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"text/tabwriter"
	"time"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
	"github.com/seed-a1426414/stampede/bench/internal/progress"
	"github.com/seed-a1426414/stampede/bench/internal/trace"
	"github.com/seed-a1426414/stampede/bench/internal/units"
)

func main() {
	requests := flag.Int("requests", 200_000, "requests in the trace")
	workers := flag.Int("workers", 1_000, "concurrent workers")
	sleep := flag.Duration("sleep", 100*time.Millisecond, "time the origin handler takes per request")
	seed := flag.Int64("seed", 42, "seed of the Zipf trace")
	quiet := flag.Bool("quiet", false, "no progress bar")
	flag.Parse()
	if *requests <= 0 || *workers <= 0 || *sleep <= 0 {
		log.Fatal("demo: -requests, -workers and -sleep must be above zero")
	}

	keys := trace.Keys(*requests, *seed)
	fmt.Printf("stampede demo: %s requests for Zipf(s=%g, v=%d) keys, %s concurrent workers, an origin that takes %v\n\n",
		units.Group(int64(*requests)), trace.ZipfS, trace.ZipfV, units.Group(int64(*workers)), *sleep)

	bar := progress.Start("without stampede", int64(2**requests), *quiet)
	bare := trace.Run(trace.Config{Keys: keys, Workers: *workers, Sleep: *sleep, Progress: &bar.Done})

	bar.Describe("with stampede   ")
	store, err := memstore.New(256 << 20)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	counted := trace.Count(store)
	cache := stampede.New(nil, counted, time.Hour)
	mem := trace.Run(trace.Config{Keys: keys, Workers: *workers, Sleep: *sleep, Progress: &bar.Done,
		Middleware: cache.Handler, Wait: cache.Wait})
	bar.Stop()

	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\twall time\torigin calls\tstore GETs\tp50 latency\tp99 latency\twall / lower bound\t")
	row := func(name string, r trace.Result, gets string) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%.2f×\t\n", name, units.Duration(r.Wall), units.Group(r.Runs), gets,
			units.Duration(r.P50), units.Duration(r.P99), r.Ratio())
	}
	row("without stampede", bare, "-")
	row("stampede, memory store", mem, units.Group(counted.Gets()))
	_ = tw.Flush()

	saved := bare.Runs - mem.Runs
	fmt.Printf("\norigin calls saved: %s of %s (%.1f%%); %s distinct keys, each computed %s\n",
		units.Group(saved), units.Group(bare.Runs), 100*float64(saved)/float64(bare.Runs), units.Group(int64(mem.Distinct)),
		onceOrNot(mem))
	fmt.Printf("lower bound: %s keys × %v / %s workers = %s, the least time any cache could take;\n",
		units.Group(int64(mem.Distinct)), *sleep, units.Group(int64(*workers)), units.Duration(mem.LowerBound()))
	fmt.Printf("  a middleware that cost nothing would take %s on this trace (simulated: workers that ask for a\n",
		units.Duration(mem.Ideal))
	fmt.Printf("  key being computed wait for it); stampede took %s (%.2f× the bound).\n",
		units.Duration(mem.Wall), mem.Ratio())
	speed := float64(bare.Wall) / float64(mem.Wall)
	if speed >= 1 {
		fmt.Printf("wall time: %.1f× faster with stampede\n", speed)
	} else {
		fmt.Printf("wall time: %.1f× slower with stampede (the machine's CPU, not the origin, limited this run)\n", 1/speed)
	}
	if bare.Wrong+mem.Wrong > 0 {
		fmt.Printf("WRONG RESPONSES: %d without, %d with stampede\n", bare.Wrong, mem.Wrong)
		os.Exit(1)
	}
}

func onceOrNot(r trace.Result) string {
	if r.Duplicates == 0 {
		return "exactly once"
	}
	return fmt.Sprintf("once plus %s duplicate runs", units.Group(r.Duplicates))
}
