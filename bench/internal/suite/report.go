package suite

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/seed-a1426414/stampede/bench/internal/hit"
	"github.com/seed-a1426414/stampede/bench/internal/trace"
	"github.com/seed-a1426414/stampede/bench/internal/units"
)

// report is everything one run of the suite measured.
type report struct {
	opts              options
	machine           machine
	started, finished time.Time
	traces            []traceRow
	hits              []hitRow
	bursts            []burstRow
	wrk               *wrkResult
	peersWrk          *wrkResult     // the peer server's routes
	do                []hitRow       // Do on a cached key; ratios are to the floor
	gochi             *goChiCheckout // the go-chi/stampede checkout measured; nil when it was not
	notes             []string
}

func (rep *report) markdown(docs string) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	m := rep.machine
	p("# Benchmarks\n\n")
	p("Written by `make bench` (`bench/cmd/bench`) on %s", rep.started.UTC().Format("2006-01-02 15:04 MST"))
	if m.commit != "" {
		p(" at commit `%s`", m.commit)
	}
	p(", in %v. Every number below comes from this one run.\n\n", rep.finished.Sub(rep.started).Round(time.Second))
	p("Machine: %d × %s, %s, load average %s when it started. It is a shared machine: absolute numbers move\n", m.cpus, m.cpu, m.goVersion, m.load)
	p("by tens of percent from run to run; compare rows of one run, and rerun on your own hardware:\n\n")
	p("```sh\nmake bench                                   # everything; Redis through a redis-server it starts\ncd bench && go run ./cmd/bench -redis host:port   # your Redis (keys are prefixed, nothing is flushed)\n")
	p("git clone -b v0.9.1 https://github.com/go-chi/stampede /tmp/go-chi-stampede\n")
	p("make bench GOCHI_STAMPEDE=/tmp/go-chi-stampede    # also go-chi/stampede, built from that checkout\n```\n\n")

	rep.peerSection(&b)
	if len(rep.traces) > 0 {
		rep.traceSection(&b, docs)
	}
	if len(rep.hits) > 0 {
		rep.hitSection(&b)
	}
	if len(rep.bursts) > 0 {
		rep.burstSection(&b)
	}
	if rep.wrk != nil || rep.peersWrk != nil {
		rep.wrkSection(&b)
	}
	if len(rep.do) > 0 {
		rep.doSection(&b)
	}
	rep.targetSection(&b)
	if len(rep.notes) > 0 {
		p("## Notes\n\n")
		for _, n := range rep.notes {
			p("- %s\n", n)
		}
		p("\n")
	}
	return b.String()
}

func (rep *report) traceSection(b *strings.Builder, docs string) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	first := rep.traces[0].res
	p("## Zipf trace\n\n")
	p("%s requests whose keys follow Zipf(s=%g, v=%d, imax=%s) (seed %d: %s distinct keys), served in\n",
		units.Group(int64(first.Requests)), trace.ZipfS, trace.ZipfV, units.Group(trace.ZipfIMax), rep.opts.seed, units.Group(int64(first.Distinct)))
	p("process (`ServeHTTP` on an `httptest.ResponseRecorder`) by N concurrent workers, each taking the next request\n")
	p("of the trace, against an origin handler that sleeps %v. Each configuration starts cold. The **lower bound**\n", first.Sleep)
	p("is `distinct keys × sleep / workers`: every key must be computed once, at most `workers` at a time. **Ideal** is\n")
	p("the wall time of a middleware that costs nothing, simulated on the same trace: a worker that asks for a key\n")
	p("being computed waits for it rather than computing another, so it exceeds the lower bound, the more so the\n")
	p("fewer requests each worker has (at 100,000 workers each serves two, one after the other).\n")
	p("Store GETs are counted by a wrapper around the store; for Redis also from `INFO commandstats`\n")
	p("(`cmdstat_get` and `cmdstat_mget` calls during the run: the Redis store batches concurrent reads into MGETs, so\n")
	p("they are round trips, far fewer than store GETs); the floor and go-chi/stampede have no such counters. Latency is per\n")
	p("request, as the worker saw it.")
	if n := rep.opts.traceRounds; n > 1 {
		p(" Each configuration ran %d times,\n", n)
		p("interleaved with the others; each row is its round with the median wall time, and \"duplicate runs\" gives\n")
		p("the most of any round when that is more.")
	}
	p("\n\n")
	p("| workers | configuration | wall time | lower bound | wall / bound | ideal (simulated) | CPU time | handler runs | distinct keys | duplicate runs | store GETs | Redis GET + MGET (INFO) | breaker trips | p50 | p99 | wrong bodies |\n")
	p("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rep.traces {
		x := r.res
		dup := "-"
		if r.config != cfgNone {
			dup = units.Group(x.Duplicates)
			if r.maxDuplicates > x.Duplicates {
				dup += fmt.Sprintf(" (up to %s)", units.Group(r.maxDuplicates))
			}
		}
		p("| %s | %s | %s | %s | %.2f× | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d |\n",
			units.Group(int64(x.Workers)), r.config, units.Duration(x.Wall), units.Duration(x.LowerBound()), x.Ratio(),
			units.Duration(x.Ideal), units.Duration(x.CPU),
			units.Group(x.Runs), units.Group(int64(x.Distinct)), dup, optInt(r.storeGets), optInt(r.redisGets), optInt(r.trips),
			units.Duration(x.P50), units.Duration(x.P99), x.Wrong)
	}
	p("\n\"Duplicate runs\" counts handler runs beyond the first for a key; without the middleware every request\n")
	p("runs the handler, so it is not shown there. \"CPU time\" is the process's user + system time during the run\n")
	p("(%d cores: a run whose CPU time nears %d × its wall time was CPU-bound, and no lower bound below CPU time / %d\n", rep.machine.cpus, rep.machine.cpus, rep.machine.cpus)
	p("is reachable). \"Breaker trips\" counts the times the middleware's circuit breaker opened on store errors\n")
	p("or timeouts and served from the handler for its back-off ([behaviour §7.1](%s/behaviour.md#7-stores)).\n\n", docs)
	p("![Origin handler runs per configuration and concurrency](%s/%s)\n\n", docs, chartRuns)
	p("![Wall time per configuration and concurrency, against the lower bound](%s/%s)\n\n", docs, chartWall)
}

func (rep *report) hitSection(b *strings.Builder) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("## Hit path\n\n")
	p("A stored response replayed by the middleware, beside the bare handler writing the same `Content-Type` and\n")
	p("body, to an `httptest.ResponseRecorder` from `b.RunParallel` (GOMAXPROCS=%d). %s of `testing.Benchmark`\n", rep.machine.cpus, roundsOf(rep.opts.hitRounds))
	p("(%s each), each round running every variant and size in turn. ns/op, B/op and allocs/op are\n", rep.opts.benchtime)
	p("medians over the rounds; **× bare** is the median of each round's ratio to the bare handler of the same\n")
	p("round (seconds apart, so a noisy neighbour weighs on both), with the range over the rounds. Before the\n")
	p("timer starts, one request records the response and a second is checked to be a hit with the same body;\n")
	p("a benchmark whose handler runs while timed fails. %s The same\n", peerVariantsNote(rep.gochi != nil))
	p("benchmarks but go-chi's run with `cd bench && go test -bench Hit -benchmem`.\n\n")
	p("| body | variant | ns/op | × bare | × bare, range over rounds | B/op | allocs/op |\n|---:|---|---:|---:|---:|---:|---:|\n")
	for _, h := range rep.hits {
		if h.variant == hitBare {
			p("| %s | %s | %.0f | 1× | | %.0f | %.0f |\n", sizeName(h.size), h.variant, h.nsPerOp, h.bytesPerOp, h.allocsPerOp)
			continue
		}
		p("| %s | %s | %.0f | %.2f× | %.2f–%.2f× | %.0f | %.0f |\n", sizeName(h.size), h.variant, h.nsPerOp, h.ratio,
			h.ratioMin, h.ratioMax, h.bytesPerOp, h.allocsPerOp)
	}
	p("\n")
}

func (rep *report) burstSection(b *strings.Builder) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("## Burst\n\n")
	p("%s clients released at the same instant on one cold key, over real HTTP on loopback (the server is a\n", units.Group(int64(rep.opts.clients)))
	p("child process: 10,000 connections on each side do not fit one process under a 20,000-descriptor limit). The\n")
	p("origin sleeps %v; stampede uses the memory store. Completion times are from the release to each client's\n", rep.opts.sleep)
	p("last body byte. \"Keep-alive\" bursts reuse connections opened beforehand; the last opens them in the burst\n")
	p("(the listen backlog is `net.core.somaxconn`, %s here).\n\n", somaxconn())
	p("| burst | handler runs | X-Cache | failed | connections opened | first done | p50 | p99 | last done | spread (last − first) |\n|---|---:|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rep.bursts {
		p("| %s | %s | %s | %d | %s | %s | %s | %s | %s | %s |\n", r.name, units.Group(r.runs), outcomes(r.outcomes), r.errors,
			units.Group(r.dials), units.Duration(r.min), units.Duration(r.p50), units.Duration(r.p99), units.Duration(r.max),
			units.Duration(r.max-r.min))
	}
	p("\n")
}

func (rep *report) wrkSection(b *strings.Builder) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("## Over the wire\n\n")
	row := func(r wrkRun) {
		non := r.non2xx
		if non == "" {
			non = "0"
		}
		cpu := "n/a"
		if r.cpu >= 0 && r.requests > 0 {
			cpu = units.Duration(r.cpu / time.Duration(r.requests))
		}
		p("| %s | `%s` | %s | %s | %s | %s |\n", r.route, r.url, units.Group(int64(r.rps+0.5)), r.latency, cpu, non)
	}
	if w := rep.wrk; w != nil {
		p("`%s` against `_example/simple` (chi, request-id middleware, memory store): `/slow?q=…` is a stored hit,\n", w.version)
		p("`/bare?q=…` writes the same %d-byte body and `Content-Type` with no stampede. `wrk -t%d -c%d -d%v`, in the\n", w.body, w.threads, w.conns, w.duration)
		p("order cached, bare, bare, cached; wrk and the server share the machine's %d cores. Server CPU is the server\n", rep.machine.cpus)
		p("process's user + system time during the run (`/proc/<pid>/stat`, 10 ms ticks) over the requests wrk completed.\n\n")
		p("| route | path | requests/s | avg latency | server CPU / request | non-2xx |\n|---|---|---:|---:|---:|---:|\n")
		for _, r := range w.runs {
			row(r)
		}
		p("\nMean requests/s: cached %s, bare %s; **ratio %.3f**.", units.Group(int64(w.mean("cached")+0.5)), units.Group(int64(w.mean("bare")+0.5)), w.ratio())
		if d, ok := w.cpuAdded("cached"); ok {
			p(" Server CPU added per request over bare: %s.", signedDuration(d))
		}
		p("\n\n")
	}
	if w := rep.peersWrk; w != nil {
		p("### The peers\n\n")
		p("One server, a child process of the benchmark, with one `http.ServeMux` route per peer: `/bare/1` writes\n")
		p("`Content-Type` and the same %d-byte body as the handler behind `/floor/1` (the floor), ", w.body)
		if rep.gochi != nil {
			p("`/gochi/1` (go-chi/stampede,\nstand-in map store), ")
		}
		p("and `/stampede/1` (memory store), all with an hour's TTL, each primed by two requests\n")
		p("and checked to have run its handler once, also after wrk. `wrk -t%d -c%d -d%v` per run, the bare route first and\n", w.threads, w.conns, w.duration)
		p("last and the peers in between, then in reverse order; each peer's ratio is its mean requests/s over the\n")
		p("bare route's, and its added CPU its server CPU per request over both runs minus the bare route's.\n\n")
		p("| route | path | requests/s | avg latency | server CPU / request | non-2xx |\n|---|---|---:|---:|---:|---:|\n")
		for _, r := range w.runs {
			row(r)
		}
		p("\n| route | × bare requests/s | server CPU added per request over bare |\n|---|---:|---:|\n")
		for _, route := range wrkPeerRoutes()[1:] {
			added := "n/a"
			if d, ok := w.cpuAdded(route); ok {
				added = signedDuration(d)
			}
			p("| %s | %.3f | %s |\n", route, w.ratioOf(route), added)
		}
		p("\n")
	}
}

func (rep *report) doSection(b *strings.Builder) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("## Function API: Do on a cached key\n\n")
	p("A function cache's `Do(ctx, key, load)` on a key loaded before the timer starts (a %s value), from\n", sizeName(len(hit.DoValue)))
	p("`b.RunParallel`, in %s of `testing.Benchmark` like the hit path; the benchmark fails if `load`\n", roundsOf(rep.opts.hitRounds))
	p("runs again. The floor is `golang.org/x/sync/singleflight` in front of an otter v2 cache (`GetIfPresent`, then\n")
	p("`Set` on a miss). ")
	if rep.gochi != nil {
		p("go-chi/stampede is `NewStampede[[]byte](logger, store, WithTTL(1h)).Do` on the stand-in map\nstore. ")
	}
	p("stampede is `NewStampede[[]byte](logger, store, WithTTL(1h)).Do` on `memstore.NewValues` and on the\nstand-in map store. × floor is the median of each round's ratio to the floor.\n\n")
	p("| variant | ns/op | × floor | × floor, range over rounds | B/op | allocs/op |\n|---|---:|---:|---:|---:|---:|\n")
	for _, h := range rep.do {
		if h.variant == doFloor {
			p("| %s | %.0f | 1× | | %.0f | %.0f |\n", h.variant, h.nsPerOp, h.bytesPerOp, h.allocsPerOp)
			continue
		}
		p("| %s | %.0f | %.2f× | %.2f–%.2f× | %.0f | %.0f |\n", h.variant, h.nsPerOp, h.ratio, h.ratioMin, h.ratioMax, h.bytesPerOp, h.allocsPerOp)
	}
	p("\n")
}

func (rep *report) targetSection(b *strings.Builder) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("## Targets\n\n| target | measured | met |\n|---|---|:---:|\n")
	row := func(target, measured string, ok bool) {
		mark := "no"
		if ok {
			mark = "yes"
		}
		p("| %s | %s | %s |\n", target, measured, mark)
	}
	for _, cfg := range []string{cfgMemory, cfgRedis, cfgRedisSlow} {
		var parts []string
		ok, seen := true, false
		for _, r := range rep.traces {
			if r.config != cfg {
				continue
			}
			seen = true
			parts = append(parts, fmt.Sprintf("%s workers: %s runs / %s keys", units.Group(int64(r.res.Workers)),
				units.Group(r.res.Runs), units.Group(int64(r.res.Distinct))))
			ok = ok && r.res.Runs == int64(r.res.Distinct) && r.maxDuplicates == 0 && r.res.Wrong == 0
		}
		if seen {
			row("handler runs == distinct keys, "+cfg, strings.Join(parts, "; "), ok)
		}
	}
	for _, r := range rep.traces {
		if r.config == cfgMemory && r.res.Workers == 10_000 {
			row("memory store, 10,000 workers: wall ≤ 1.5× lower bound",
				fmt.Sprintf("%s / %s = %.2f×", units.Duration(r.res.Wall), units.Duration(r.res.LowerBound()), r.res.Ratio()), r.res.Ratio() <= 1.5)
		}
	}
	for _, h := range rep.hits {
		if h.size == 1<<10 && h.variant == hitMem {
			row("memory hit, 1 KiB: ≤ 1.3× bare ns/op", fmt.Sprintf("%.2f× (%.0f vs %.0f ns, medians; rounds %.2f–%.2f×)",
				h.ratio, h.nsPerOp, bareNs(rep.hits, h.size), h.ratioMin, h.ratioMax), h.ratio <= 1.3)
		}
	}
	if rep.wrk != nil {
		row("wrk: cached ≥ 0.9× bare requests/s", fmt.Sprintf("%.3f", rep.wrk.ratio()), rep.wrk.ratio() >= 0.9)
	}
	p("\n")
}

func bareNs(hits []hitRow, size int) float64 {
	for _, h := range hits {
		if h.variant == hitBare && h.size == size {
			return h.nsPerOp
		}
	}
	return 0
}

func optInt(n int64) string {
	if n < 0 {
		return "-"
	}
	return units.Group(n)
}

func sizeName(n int) string {
	switch {
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	default:
		return fmt.Sprintf("%d B", n)
	}
}

func outcomes(m map[string]int) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		name := k
		if name == "" {
			name = "none"
		}
		parts = append(parts, fmt.Sprintf("%s %s", name, units.Group(int64(m[k]))))
	}
	return strings.Join(parts, ", ")
}
