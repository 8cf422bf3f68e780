// Package suite is the benchmark suite that cmd/bench runs (see its documentation for the parts and the
// flags). It is a package rather than the command itself so that the go-chi/stampede adapter, a program
// built outside the bench module, runs the same suite with go-chi/stampede compiled in.
package suite

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/seed-a1426414/stampede/bench/internal/peers"
	"github.com/seed-a1426414/stampede/bench/internal/redisproc"
)

type options struct {
	redis       string // "", "auto" or host:port
	requests    int
	workers     []int
	sleep       time.Duration
	seed        int64
	redisPool   int
	hitRounds   int
	traceRounds int
	clients     int
	wrkTime     time.Duration
	wrkConns    int
	root        string // the stampede module's directory
	out         string // BENCHMARKS.md
	docs        string // where the PNGs go
	parts       map[string]bool
	quiet       bool
	gochi       string // a go-chi/stampede checkout; "" skips it
	benchtime   string // testing's -benchtime for the hit and do parts
}

// Main parses the command line and runs the suite: cmd/bench's main, and the go-chi adapter's.
func Main() {
	testing.Init() // testing.Benchmark reads the testing package's flags; their defaults are what we want
	var o options
	var workers, only string
	flag.StringVar(&o.redis, "redis", "", `Redis for the Redis configurations: "auto" starts a redis-server on a free loopback port, host:port uses yours, "" skips them`)
	flag.IntVar(&o.requests, "requests", 200_000, "requests in the trace")
	flag.StringVar(&workers, "workers", "1000,10000,100000", "comma-separated worker counts for the trace")
	flag.DurationVar(&o.sleep, "sleep", 100*time.Millisecond, "time the origin handler takes (trace and burst)")
	flag.Int64Var(&o.seed, "seed", 42, "seed of the Zipf trace")
	flag.IntVar(&o.redisPool, "redis-pool", 0, "go-redis PoolSize for the Redis store (0: go-redis default, 10 per CPU)")
	flag.IntVar(&o.traceRounds, "trace-rounds", 3, "rounds of the trace; the report gives each configuration's median round by wall time")
	flag.IntVar(&o.hitRounds, "hit-rounds", 5, "interleaved rounds of the hit and Do benchmarks; the report gives medians")
	flag.StringVar(&o.benchtime, "benchtime", "1s", "run time of each testing.Benchmark of the hit and Do parts (testing's -benchtime: 1s, 100ms, 5000x)")
	flag.IntVar(&o.clients, "clients", 10_000, "concurrent clients in the burst")
	flag.DurationVar(&o.wrkTime, "wrk-duration", 5*time.Second, "duration of each wrk run")
	flag.IntVar(&o.wrkConns, "wrk-connections", 50, "wrk connections")
	flag.StringVar(&o.root, "root", "..", "directory of the stampede module (for _example/simple)")
	flag.StringVar(&o.out, "out", "../BENCHMARKS.md", "report to write")
	flag.StringVar(&o.docs, "docs", "../docs", "directory for the PNG charts")
	flag.StringVar(&only, "only", "trace,hit,burst,wrk,do", "parts to run")
	flag.StringVar(&o.gochi, "gochi", "", "directory of a go-chi/stampede checkout (git clone https://github.com/go-chi/stampede, tag v0.9.1) to measure beside stampede; \"\" skips it")
	flag.BoolVar(&o.quiet, "quiet", false, "no progress bar")
	commit := flag.String("commit", "", "the commit measured, for the report (default: git rev-parse in -root)")
	burstServer := flag.Bool("burst-server", false, "internal: serve the burst routes and print the address")
	peerServer := flag.Bool("peer-server", false, "internal: serve the peer wrk routes and print the address")
	buildNote := flag.String("gochi-build-note", "", "internal: what the build with go-chi/stampede changed, for the report")
	flag.Parse()

	if *burstServer {
		serveBurst(o.sleep)
		return
	}
	if *peerServer {
		serveWrkPeers()
		return
	}
	if o.gochi != "" && !peers.GoChiLinked() {
		// This build lacks go-chi/stampede: make one that has it and let it do the run.
		code, err := runWithGoChi(o)
		if err != nil {
			log.Fatalf("bench: -gochi: %v", err)
		}
		os.Exit(code)
	}
	if o.gochi == "" && peers.GoChiLinked() {
		log.Fatal("bench: built with go-chi/stampede but no -gochi DIR given")
	}
	if err := flag.Set("test.benchtime", o.benchtime); err != nil {
		log.Fatalf("bench: -benchtime %q: %v", o.benchtime, err)
	}
	for w := range strings.SplitSeq(workers, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil || n <= 0 {
			log.Fatalf("bench: bad -workers entry %q", w)
		}
		o.workers = append(o.workers, n)
	}
	o.parts = map[string]bool{}
	if o.traceRounds < 1 || o.hitRounds < 1 {
		log.Fatal("bench: -trace-rounds and -hit-rounds must be at least 1")
	}
	for p := range strings.SplitSeq(only, ",") {
		o.parts[strings.TrimSpace(p)] = true
	}

	if o.redis == "auto" {
		srv, err := redisproc.Start()
		if err != nil {
			log.Fatalf("bench: -redis auto: %v", err)
		}
		defer srv.Stop()
		o.redis = srv.Addr
		log.Printf("started redis-server on %s", srv.Addr)
	} else if o.redis != "" {
		if err := redisproc.Ping(o.redis); err != nil {
			log.Fatalf("bench: Redis at %s: %v", o.redis, err)
		}
	}

	rep := &report{opts: o, machine: describeMachine(o.root), started: time.Now()}
	if *commit != "" {
		rep.machine.commit = *commit
	}
	if peers.GoChiLinked() {
		c := goChiSource(o.gochi)
		rep.gochi = &c
		if *buildNote != "" {
			rep.notes = append(rep.notes, *buildNote)
		}
	}
	if o.parts["trace"] {
		rep.traces = runTraces(o)
	}
	if o.parts["hit"] {
		rep.hits = runHits(o)
	}
	if o.parts["burst"] {
		bursts, err := runBursts(o)
		if err != nil {
			log.Printf("burst: %v", err)
			rep.notes = append(rep.notes, "burst: "+err.Error())
		}
		rep.bursts = bursts
	}
	if o.parts["wrk"] {
		w, err := runWrk(o)
		if err != nil {
			log.Printf("wrk: %v", err)
			rep.notes = append(rep.notes, "wrk: "+err.Error())
		} else {
			rep.wrk = w
		}
		if err == nil || !errors.Is(err, errWrkMissing) {
			pw, err := runPeersWrk(o)
			if err != nil {
				log.Printf("wrk, peers: %v", err)
				rep.notes = append(rep.notes, "wrk, peers: "+err.Error())
			} else {
				rep.peersWrk = pw
				rep.notes = append(rep.notes, pw.notes...)
			}
		}
	}
	if o.parts["do"] {
		rep.do = runDo(o)
	}
	rep.finished = time.Now()

	if len(rep.traces) > 0 {
		if err := os.MkdirAll(o.docs, 0o755); err != nil {
			log.Fatal(err)
		}
		if err := drawCharts(rep.traces, o.docs); err != nil {
			log.Fatalf("charts: %v", err)
		}
	}
	md := rep.markdown(relPath(filepath.Dir(o.out), o.docs))
	if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(o.out, []byte(md), 0o644); err != nil {
		log.Fatal(err)
	}
	fmt.Print(md)
	log.Printf("wrote %s and the charts in %s", o.out, o.docs)
}

// machine is what the report says about where it ran.
type machine struct {
	goVersion, cpu, commit, load string
	cpus                         int
}

func describeMachine(root string) machine {
	m := machine{goVersion: runtime.Version(), cpus: runtime.NumCPU(), cpu: "unknown"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if name, ok := strings.CutPrefix(line, "model name"); ok {
				m.cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	cmd := exec.Command("git", "rev-parse", "--short", "HEAD")
	cmd.Dir = root
	if b, err := cmd.Output(); err == nil {
		m.commit = strings.TrimSpace(string(b))
		// Changes to the library that are not committed yet are part of what was measured.
		st := exec.Command("git", "status", "--porcelain", "--untracked-files=no", "--", ".",
			":(exclude)bench", ":(exclude)BENCHMARKS.md", ":(exclude)docs")
		st.Dir = root
		if out, err := st.Output(); err == nil && len(bytes.TrimSpace(out)) > 0 {
			m.commit += " plus uncommitted changes"
		}
	}
	return m
}

func relPath(from, to string) string {
	r, err := filepath.Rel(from, to)
	if err != nil {
		return to
	}
	return filepath.ToSlash(r)
}

// median returns the median of xs (the mean of the middle two for an even count).
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
