package suite

import (
	"fmt"
	"strings"
	"time"

	"github.com/seed-a1426414/stampede/bench/internal/hit"
	"github.com/seed-a1426414/stampede/bench/internal/units"
)

// peerColumn is one column of the comparison table: the names of its variant in each part.
type peerColumn struct {
	title                 string
	hit, wrk, trace, doFn string // "" where the column has no such variant
	bare, hasDo           bool
}

func (rep *report) peerColumns() []peerColumn {
	cols := []peerColumn{
		{title: "bare", hit: hitBare, wrk: wrkBare, bare: true},
		{title: "floor", hit: hitFloor, wrk: wrkFloor, trace: cfgFloor, doFn: doFloor, hasDo: true},
	}
	if rep.gochi != nil {
		title := "go-chi/stampede"
		if rep.gochi.version != "" {
			title += " " + rep.gochi.version
		}
		cols = append(cols, peerColumn{title: title + " (stand-in map store)¹", hit: hitGoChi, wrk: wrkGoChi,
			trace: cfgGoChi, doFn: doGoChi, hasDo: true})
	}
	return append(cols, peerColumn{title: "stampede", hit: hitMem, wrk: wrkStampede, trace: cfgMemory,
		doFn: doStampede, hasDo: true})
}

// peerSection is the side-by-side table of bare, floor, go-chi/stampede and stampede, from the rows the
// other sections detail.
func (rep *report) peerSection(b *strings.Builder) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	cols := rep.peerColumns()
	p("## Stampede and its peers\n\n")
	p("The same measurements, in this one run, for the handler alone (bare), the floor, ")
	if rep.gochi != nil {
		p("go-chi/stampede and stampede\n(memory store).")
	} else {
		p("and stampede (memory\nstore).")
	}
	p(" The **floor** (`bench/internal/floor`) is the cheapest middleware that still answers these\n")
	p("benchmarks correctly: `golang.org/x/sync/singleflight` and a `sync.Map` of recorded responses keyed by method,\n")
	p("host, path and raw query. It bounds what a shared in-memory table can cost; it is not safe to ship (it\n")
	p("replays `Set-Cookie` and private responses to everyone, caches errors, never expires and has no bound).\n")
	if rep.gochi == nil {
		p("\n**go-chi/stampede: not measured, pass -gochi DIR** (`make bench GOCHI_STAMPEDE=DIR`, DIR a clone of\n")
		p("https://github.com/go-chi/stampede at tag v0.9.1).\n")
	} else {
		p("**go-chi/stampede** keys a response by its lower-cased path alone (not the query or host), and on a hit\n")
		p("copies the recorded headers but those of CORS, rate limits and `Set-Cookie`.\n")
	}
	p("\n| measurement |")
	for _, c := range cols {
		p(" %s |", c.title)
	}
	p("\n|---|")
	for range cols {
		p("---|")
	}
	p("\n")
	row := func(name string, cell func(c peerColumn) string) {
		p("| %s |", name)
		for _, c := range cols {
			p(" %s |", cell(c))
		}
		p("\n")
	}

	if len(rep.hits) > 0 {
		var sizes []string
		for _, s := range hit.Sizes {
			sizes = append(sizes, sizeName(s))
		}
		perSize := func(c peerColumn, f func(hitRow) string) string {
			var parts []string
			for _, s := range hit.Sizes {
				h := findHit(rep.hits, c.hit, s)
				if h == nil {
					return "not run"
				}
				parts = append(parts, f(*h))
			}
			return strings.Join(parts, " / ")
		}
		row("memory hit, "+strings.Join(sizes, " / ")+", × bare (ns/op)", func(c peerColumn) string {
			if c.bare {
				return "1× (" + perSize(c, func(h hitRow) string { return units.Group(int64(h.nsPerOp + 0.5)) }) + " ns)"
			}
			return perSize(c, func(h hitRow) string { return fmt.Sprintf("%.2f×", h.ratio) })
		})
		row("allocs per hit", func(c peerColumn) string {
			return perSize(c, func(h hitRow) string { return fmt.Sprintf("%.0f", h.allocsPerOp) })
		})
	}
	if w := rep.peersWrk; w != nil {
		row("wrk over loopback, cached route, × bare requests/s", func(c peerColumn) string {
			if c.bare {
				return fmt.Sprintf("1× (%s/s)", units.Group(int64(w.mean(wrkBare)+0.5)))
			}
			return fmt.Sprintf("%.2f×", w.ratioOf(c.wrk))
		})
		row("server CPU added per request over bare", func(c peerColumn) string {
			if c.bare {
				if d, ok := w.cpuPerRequest(wrkBare); ok {
					return "– (bare: " + units.Duration(d) + ")"
				}
				return "–"
			}
			if d, ok := w.cpuAdded(c.wrk); ok {
				return signedDuration(d)
			}
			return "n/a"
		})
	}
	if len(rep.traces) > 0 {
		var ws []string
		for _, n := range rep.opts.workers {
			ws = append(ws, units.Group(int64(n)))
		}
		perWorkers := func(c peerColumn, f func(traceRow) string) string {
			if c.trace == "" {
				return "–"
			}
			var parts []string
			for _, n := range rep.opts.workers {
				r := findTrace(rep.traces, c.trace, n)
				if r == nil {
					return "not run"
				}
				parts = append(parts, f(*r))
			}
			return strings.Join(parts, "<br>")
		}
		row("Zipf trace, "+strings.Join(ws, " / ")+" workers: wall, process CPU, p99", func(c peerColumn) string {
			return perWorkers(c, func(r traceRow) string {
				return fmt.Sprintf("%s: %s, %s, %s", units.Group(int64(r.res.Workers)), units.Duration(r.res.Wall),
					units.Duration(r.res.CPU), units.Duration(r.res.P99))
			})
		})
		row("Zipf trace: handler runs / distinct keys", func(c peerColumn) string {
			return perWorkers(c, func(r traceRow) string {
				s := fmt.Sprintf("%s: %s / %s", units.Group(int64(r.res.Workers)), units.Group(r.res.Runs), units.Group(int64(r.res.Distinct)))
				if r.res.Wrong > 0 {
					s += fmt.Sprintf(" (%s wrong bodies)", units.Group(r.res.Wrong))
				}
				return s
			})
		})
	}
	if len(rep.do) > 0 {
		row("`Do` on a cached key: ns/op, allocs/op", func(c peerColumn) string {
			switch {
			case c.bare:
				return "–"
			case !c.hasDo:
				return "no function API yet"
			}
			for _, h := range rep.do {
				if h.variant == c.doFn {
					s := fmt.Sprintf("%.0f ns, %.0f allocs", h.nsPerOp, h.allocsPerOp)
					if c.doFn != doFloor {
						s += fmt.Sprintf(" (%.2f× floor)", h.ratio)
					}
					return s
				}
			}
			return "not run"
		})
	}
	p("\n")
	if rep.gochi != nil {
		p("¹ go-chi/stampede, built from a checkout given with `-gochi` into an adapter program\n")
		p("(`bench/internal/suite/testdata/gochiadapter`) in a temporary Go workspace; %s.", rep.gochi.about)
		p(" Its in-memory backend, `github.com/goware/cachestore-mem`, is not\n")
		p("part of the build: every go-chi number here runs on a **stand-in**, `peers.MapStore`\n")
		p("(`bench/internal/peers`), a map under one mutex implementing `github.com/goware/cachestore2` v0.12.2's\n")
		p("`Backend`, with TTLs but without cachestore-mem's LRU bound and recency updates.\n\n")
	}
	p("How each number was measured (details in the sections below):\n\n")
	if len(rep.hits) > 0 {
		p("- memory hit and allocs: the [hit path](#hit-path) benchmarks, `testing.Benchmark` with `b.RunParallel` and\n")
		p("  `b.ReportAllocs` on `httptest.ResponseRecorder`s, %s; × bare is the median of each round's\n", roundsOf(rep.opts.hitRounds))
		p("  ratio to the bare handler, allocs the median allocs/op;\n")
	}
	if rep.peersWrk != nil {
		p("- wrk: the [peer server](#the-peers), one process with a route per peer; × bare is the peer's mean\n")
		p("  requests/s over the bare route's, and the added CPU the server process's CPU time per request\n")
		p("  (`/proc/<pid>/stat`) on the peer's route minus that on the bare route;\n")
	}
	if len(rep.traces) > 0 {
		p("- Zipf trace: the [trace](#zipf-trace)'s median round of each configuration: wall time, the CPU time of\n")
		p("  the whole benchmark process during the run (the trace driver's own work included), and the 99th\n")
		p("  percentile of the latency the workers saw;\n")
	}
	if len(rep.do) > 0 {
		p("- `Do`: the [function API](#function-api-do-on-a-cached-key) benchmarks, like the hit path.\n")
	}
	p("\n")
}

func findHit(rows []hitRow, variant string, size int) *hitRow {
	for i := range rows {
		if rows[i].variant == variant && rows[i].size == size {
			return &rows[i]
		}
	}
	return nil
}

func findTrace(rows []traceRow, cfg string, workers int) *traceRow {
	for i := range rows {
		if rows[i].config == cfg && rows[i].res.Workers == workers {
			return &rows[i]
		}
	}
	return nil
}

// signedDuration is d with its sign: "+1.2µs", "−300ns".
func signedDuration(d time.Duration) string {
	if d < 0 {
		return "−" + units.Duration(-d)
	}
	return "+" + units.Duration(d)
}

// peerVariantsNote is the hit section's sentence on the peers' variants.
func peerVariantsNote(gochi bool) string {
	s := "The floor is singleflight and a `sync.Map`\nof recorded responses (`bench/internal/floor`, not safe to ship)"
	if gochi {
		s += "; go-chi/stampede runs on the stand-in\nmap store (see the peers table)"
	}
	return s + "."
}

// roundsOf is "1 round" or "n interleaved rounds".
func roundsOf(n int) string {
	if n == 1 {
		return "1 round"
	}
	return fmt.Sprintf("%d interleaved rounds", n)
}
