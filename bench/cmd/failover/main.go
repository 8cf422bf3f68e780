// Command failover measures stampede while Redis fails over under load, and writes docs/failover.md.
//
//	go run ./cmd/failover                        # everything, about eleven minutes
//	go run ./cmd/failover -variants default -scenarios cluster-kill,sentinel-stop -out -   # some, to stdout
//
// Three replicas of a service (a stampede.Cache and a stampede.Loader each, over one Redis) serve a
// Zipf key set at a fixed rate, with purges and invalidations mixed in, while the Redis side, real
// redis-server processes on free loopback ports (a Sentinel group, or a Redis Cluster with a replica per
// master), loses its master: kill -9, SIGSTOP until the failover has ended, or a planned failover. The
// report gives, per scenario: failed requests, stale answers (older than a purge that returned nil
// before the request began), duplicate loads, how long the failover took, when hits came back relative
// to its end, latency during the event and the worst second. See package internal/failover.
//
// Each variant is a section of the report: "default" (every scenario with stampede's and redisstore's
// defaults), "no-breaker" (the failovers with the engine's circuit breaker out of the way, to tell the
// store's part from the engine's), "client-defaults" (the cluster's failures with go-redis's default
// client settings) and "server-settings" (the Redis settings the redisstore package doc recommends). -v prints each scenario's timeline in half seconds.
//
// It needs redis-server and redis-cli (`make deps` installs them) and never touches port 6379. It is
// not part of `make test`: `make failover` runs it.
package main

import (
	"context"
	"encoding/json"
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
	scenarios := flag.String("scenarios", "all", `comma-separated scenarios ("cluster-kill", "sentinel-stop", ...), or "all": each variant's own`)
	variantList := flag.String("variants", "default,no-breaker,client-defaults,server-settings", "comma-separated configurations to measure, each a section of the report: "+variantNames())
	out := flag.String("out", "../docs/failover.md", `report to write ("-": stdout)`)
	commit := flag.String("commit", "", "the commit measured, for the report (default: git rev-parse HEAD)")
	save := flag.String("save", "", "also write the results as JSON to this file")
	render := flag.String("render", "", "write the report from results saved with -save, without measuring anything")
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
	flag.IntVar(&cfg.Replicas, "replicas", cfg.Replicas, "replicas of the Sentinel master and of each cluster master")
	flag.IntVar(&cfg.MinReplicas, "min-replicas", cfg.MinReplicas, "min-replicas-to-write on the data servers (0: off)")
	flag.BoolVar(&cfg.PartialCluster, "partial-coverage", cfg.PartialCluster, "cluster-require-full-coverage no: the healthy masters keep serving while a failed master's slots are uncovered")
	flag.BoolVar(&cfg.PauseWrites, "pause-writes", cfg.PauseWrites, "pause the old master's writes (CLIENT PAUSE WRITE) before a planned Sentinel failover")
	flag.Int64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the key choice")
	flag.BoolVar(&cfg.Verbose, "v", false, "log the harness's steps")
	flag.Parse()
	if cfg.Rate <= 0 || cfg.Items < 2 || cfg.ZipfS <= 1 || cfg.LoaderShare < 0 || cfg.LoaderShare > 1 || cfg.Replicas < 1 {
		log.Fatal("failover: -rate must be above 0, -items at least 2, -zipf above 1, -loader-share within [0, 1], -replicas at least 1")
	}

	if *render != "" {
		b, err := os.ReadFile(*render)
		if err != nil {
			log.Fatal(err)
		}
		var r saved
		if err := json.Unmarshal(b, &r); err != nil {
			log.Fatalf("failover: %s: %v", *render, err)
		}
		writeReport(*out, r)
		return
	}

	var list []failover.Scenario
	if *scenarios != "all" {
		for _, s := range strings.Split(*scenarios, ",") {
			sc, err := failover.ParseScenario(strings.TrimSpace(s))
			if err != nil {
				log.Fatal(err)
			}
			list = append(list, sc)
		}
	}
	var runs []variant
	for _, name := range strings.Split(*variantList, ",") {
		v, ok := variantNamed(strings.TrimSpace(name))
		if !ok {
			log.Fatalf("failover: unknown variant %q (want %s)", name, variantNames())
		}
		runs = append(runs, v)
	}

	info := failover.RunInfo{Commit: *commit, Machine: machine(), Date: time.Now(),
		Command: "make failover"}
	if info.Commit == "" {
		info.Commit = gitCommit()
	}
	var sections []failover.Section
	failed := false
	for _, v := range runs {
		sec := failover.Section{Title: v.title, Intro: v.intro, Config: cfg}
		v.apply(&sec.Config)
		todo := list
		if todo == nil {
			todo = v.scenarios
		}
		for _, sc := range todo {
			start := time.Now()
			log.Printf("%s: %s", v.name, sc)
			res, err := failover.Run(context.Background(), sec.Config, sc, func(s string) { log.Printf("%s", s) })
			if err != nil {
				log.Printf("%s: %v", sc, err)
				sec.Failures = append(sec.Failures, failover.Failure{Scenario: sc, Err: err.Error()})
				failed = true
				continue
			}
			log.Printf("%s: %d requests (%d not sent), %d failed, %d stale (%d lost deletions), %d duplicate loads, hits resumed %v (resumed %v), event p99 %v, stall %v, in %v",
				sc, res.Requests, res.Unsent, res.Failed, res.Stale, res.StaleOld, res.DuplicateLoads, res.HitsResumed.Round(time.Millisecond), res.Resumed,
				res.EventP99.Round(time.Millisecond), res.MaxStall.Round(time.Millisecond), time.Since(start).Round(time.Second))
			if cfg.Verbose {
				for _, pt := range res.Timeline {
					log.Printf("  %+6.1fs  %4d req %3d failed  hits %3.0f%% affected %3.0f%% other  p50 %6.1fms p99 %7.1fms",
						pt.FromFault.Seconds(), pt.Requests, pt.Failed, 100*pt.AffectedHits, 100*pt.OtherHits,
						float64(pt.P50)/1e6, float64(pt.P99)/1e6)
				}
			}
			sec.Results = append(sec.Results, res)
		}
		sections = append(sections, sec)
	}

	r := saved{Info: info, Sections: sections}
	if *save != "" {
		b, err := json.MarshalIndent(r, "", "\t")
		if err == nil {
			err = os.WriteFile(*save, b, 0o644)
		}
		if err != nil {
			log.Fatal(err)
		}
	}
	writeReport(*out, r)
	if failed {
		os.Exit(1)
	}
}

// saved is what -save writes and -render reads.
type saved struct {
	Info     failover.RunInfo
	Sections []failover.Section
}

// writeReport writes r's report to the file out, or to stdout for "-".
func writeReport(out string, r saved) {
	var w io.Writer = os.Stdout
	if out != "-" {
		f, err := os.Create(out)
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		w = f
	}
	if err := failover.WriteReport(w, r.Info, r.Sections); err != nil {
		log.Fatal(err)
	}
	if out != "-" {
		log.Printf("wrote %s", out)
	}
}

// variant is one configuration the command measures, a section of the report.
type variant struct {
	name, title, intro string
	apply              func(*failover.Config)
	scenarios          []failover.Scenario // measured unless -scenarios names others
}

func variants() []variant {
	faults := func(topologies ...string) []failover.Scenario {
		var out []failover.Scenario
		for _, sc := range failover.Scenarios() {
			for _, t := range topologies {
				if sc.Topology == t && sc.Fault != "none" {
					out = append(out, sc)
				}
			}
		}
		return out
	}
	return []variant{
		{
			name: "default", apply: func(*failover.Config) {}, scenarios: failover.Scenarios(),
		},
		{
			name:  "no-breaker",
			title: "Without the circuit breaker",
			intro: "The same scenarios with the engine's circuit breaker out of the way (`WithCircuitBreaker` at a million\n" +
				"failures), so that what remains is the store's and the client's doing: when the breaker opens\n" +
				"during an outage, its back-off, not the store, decides when hits come back.",
			apply:     func(c *failover.Config) { c.BreakerFails = 1_000_000 },
			scenarios: faults("sentinel", "cluster"),
		},
		{
			name:  "client-defaults",
			title: "With go-redis's default client settings",
			intro: "The cluster's failures with clients that keep go-redis's defaults (3 s reads, 5 s dials tried five\n" +
				"times, three retries) but for `ContextTimeoutEnabled`, which lets the store's deadline reach the\n" +
				"socket: the store's reloads do not depend on the recommended settings.",
			apply:     func(c *failover.Config) { c.ClientDefaults = true },
			scenarios: []failover.Scenario{{Topology: "cluster", Fault: "kill"}, {Topology: "cluster", Fault: "stop"}},
		},
		{
			name:  "server-settings",
			title: "With the server settings the package doc recommends",
			intro: "`cluster-require-full-coverage no`, so that the healthy masters keep serving while the failed\n" +
				"master's slots have no owner, and, for a planned Sentinel failover, the old master's writes paused\n" +
				"(`CLIENT PAUSE <ms> WRITE`) before `SENTINEL FAILOVER`, so that none is acknowledged there and lost.",
			apply: func(c *failover.Config) { c.PartialCluster, c.PauseWrites = true, true },
			scenarios: []failover.Scenario{{Topology: "sentinel", Fault: "planned"}, {Topology: "cluster", Fault: "kill"},
				{Topology: "cluster", Fault: "stop"}},
		},
	}
}

func variantNamed(name string) (variant, bool) {
	for _, v := range variants() {
		if v.name == name {
			return v, true
		}
	}
	return variant{}, false
}

func variantNames() string {
	var names []string
	for _, v := range variants() {
		names = append(names, v.name)
	}
	return strings.Join(names, ", ")
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
