// Command failover measures stampede while Redis fails over under load, and writes docs/failover.md.
//
//	go run ./cmd/failover                                  # every scenario, about six minutes
//	go run ./cmd/failover -scenarios cluster-kill,sentinel-stop -out -   # some, to stdout
//
// Three replicas of a service (a stampede.Cache and a stampede.Loader each, over one Redis) serve a
// Zipf key set at a fixed rate, with purges and invalidations mixed in, while the Redis side, real
// redis-server processes on free loopback ports (a Sentinel group, or a Redis Cluster with a replica per
// master), loses its master: kill -9, SIGSTOP until the failover has ended, or a planned failover. The
// report gives, per scenario: failed requests, stale answers (older than a purge that returned nil
// before the request began), duplicate loads, how long the failover took, when hits came back relative
// to its end, latency during the event and the worst second. See package internal/failover.
//
// It needs redis-server and redis-cli (`make deps` installs them) and never touches port 6379. It is
// not part of `make test`: `make failover` runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/seed-a1426414/stampede/bench/internal/failover"
)

func main() {
	cfg := failover.DefaultConfig()
	scenarios := flag.String("scenarios", "all", `comma-separated scenarios ("cluster-kill", "sentinel-stop", ... or "all")`)
	out := flag.String("out", "../docs/failover.md", `report to write ("-": stdout)`)
	commit := flag.String("commit", "", "the commit measured, for the report (default: git rev-parse HEAD)")
	flag.IntVar(&cfg.Rate, "rate", cfg.Rate, "requests per second")
	flag.Float64Var(&cfg.LoaderShare, "loader-share", cfg.LoaderShare, "share of requests that are Loader.Get calls")
	flag.IntVar(&cfg.Items, "items", cfg.Items, "items in the key set")
	flag.Float64Var(&cfg.ZipfS, "zipf", cfg.ZipfS, "Zipf exponent of the key choice (> 1)")
	flag.Float64Var(&cfg.PurgeRate, "purges", cfg.PurgeRate, "Cache.Purge calls per second")
	flag.Float64Var(&cfg.InvalidateRate, "invalidations", cfg.InvalidateRate, "Loader.Invalidate calls per second")
	flag.DurationVar(&cfg.OriginDelay, "origin-delay", cfg.OriginDelay, "how long the origin takes per load")
	flag.DurationVar(&cfg.Before, "before", cfg.Before, "steady load before the fault")
	flag.DurationVar(&cfg.After, "after", cfg.After, "load after the failover's end")
	flag.DurationVar(&cfg.NodeTimeout, "node-timeout", cfg.NodeTimeout, "cluster-node-timeout")
	flag.DurationVar(&cfg.DownAfter, "down-after", cfg.DownAfter, "Sentinel's down-after-milliseconds")
	flag.DurationVar(&cfg.StoreTimeout, "store-timeout", cfg.StoreTimeout, "store timeout (0: the defaults, 500 ms)")
	flag.IntVar(&cfg.Batching, "batching", cfg.Batching, "redisstore.WithBatching (0: the default)")
	flag.DurationVar(&cfg.Fleet, "fleet", cfg.Fleet, "WithFleetCoalescing's lease (0: off)")
	flag.IntVar(&cfg.BreakerFails, "breaker", cfg.BreakerFails, "WithCircuitBreaker's failures (0: the default)")
	flag.BoolVar(&cfg.ClientDefaults, "client-defaults", cfg.ClientDefaults, "go-redis clients with its defaults (ContextTimeoutEnabled aside) instead of redisstore's recommended settings")
	flag.Int64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the key choice")
	flag.BoolVar(&cfg.Verbose, "v", false, "log the harness's steps")
	flag.Parse()
	if cfg.Rate <= 0 || cfg.Items < 2 || cfg.ZipfS <= 1 || cfg.LoaderShare < 0 || cfg.LoaderShare > 1 {
		log.Fatal("failover: -rate must be above 0, -items at least 2, -zipf above 1, -loader-share within [0, 1]")
	}

	var list []failover.Scenario
	if *scenarios == "all" {
		list = failover.Scenarios()
	} else {
		for _, s := range strings.Split(*scenarios, ",") {
			sc, err := failover.ParseScenario(strings.TrimSpace(s))
			if err != nil {
				log.Fatal(err)
			}
			list = append(list, sc)
		}
	}

	info := failover.RunInfo{Commit: *commit, Machine: machine(), Date: time.Now(),
		Command: "make failover"}
	if info.Commit == "" {
		info.Commit = gitCommit()
	}
	var results []failover.Result
	failures := map[failover.Scenario]error{}
	for _, sc := range list {
		start := time.Now()
		res, err := failover.Run(context.Background(), cfg, sc, func(s string) { log.Printf("%s", s) })
		if err != nil {
			log.Printf("%s: %v", sc, err)
			failures[sc] = err
			continue
		}
		log.Printf("%s: %d requests, %d failed, %d stale (%d lost deletions), %d duplicate loads, hits resumed %v (resumed %v), event p99 %v, stall %v, in %v",
			sc, res.Requests, res.Failed, res.Stale, res.StaleOld, res.DuplicateLoads, res.HitsResumed.Round(time.Millisecond), res.Resumed,
			res.EventP99.Round(time.Millisecond), res.MaxStall.Round(time.Millisecond), time.Since(start).Round(time.Second))
		if cfg.Verbose {
			for _, pt := range res.Timeline {
				log.Printf("  %+6.1fs  %4d req %3d failed  hits %3.0f%% affected %3.0f%% other  p50 %6.1fms p99 %7.1fms",
					pt.FromFault.Seconds(), pt.Requests, pt.Failed, 100*pt.AffectedHits, 100*pt.OtherHits,
					float64(pt.P50)/1e6, float64(pt.P99)/1e6)
			}
		}
		results = append(results, res)
	}

	var w io.Writer = os.Stdout
	if *out != "-" {
		f, err := os.Create(*out)
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		w = f
	}
	if err := failover.WriteReport(w, info, cfg, results, failures); err != nil {
		log.Fatal(err)
	}
	if *out != "-" {
		log.Printf("wrote %s", *out)
	}
	if len(failures) > 0 {
		os.Exit(1)
	}
}

// machine describes where the run happened.
func machine() string {
	redis := "redis-server not found"
	if out, err := exec.Command("redis-server", "--version").Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if v, ok := strings.CutPrefix(f, "v="); ok {
				redis = "Redis " + v
			}
		}
	}
	load := ""
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			load = ", load average " + f[0] + " when it started"
		}
	}
	return fmt.Sprintf("%d CPUs, %s, %s%s", runtime.NumCPU(), runtime.Version(), redis, load)
}

func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if exec.Command("git", "diff", "--quiet", "HEAD").Run() != nil {
		c += " (with uncommitted changes)"
	}
	return c
}
