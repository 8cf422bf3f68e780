package failover

import (
	"cmp"
	"slices"
	"time"

	"github.com/seed-a1426414/stampede"
)

// records are a scenario's raw records.
type records struct {
	requests []request
	purges   []purge
	loads    []load // in the order they started, warm-up included
	stalls   []stall
	unsent   int
	affected [2][]bool // [kind][item]: the item's key lives on the master that fails
}

// Result is what a scenario measured. Durations named "At" are relative to the failover's end unless
// they say otherwise; a negative one is before it.
type Result struct {
	Scenario Scenario

	Requests int // measured requests (HTTP and loader)
	Unsent   int // requests the generator skipped because maxInFlight were in flight
	Failed   int // an HTTP error or status other than 200, or a Loader.Get error
	// Stale counts answers whose version predates a purge or invalidation of the item (through any
	// replica) that returned nil before the request began; StaleInEvent those among them that began
	// after the fault. StaleOld counts those whose value was loaded more than oldLoad before the purge
	// began: it was in the store when the purge deleted it, so the deletion was lost (acknowledged by a
	// master whose data did not survive, or undone by a replica). The others are mostly a load that
	// began before the purge and stored its value after it: the race fenced writes close.
	Stale, StaleInEvent, StaleOld int
	// Loads counts origin runs during the measured load; DuplicateLoads those that loaded a version of
	// an item that had been loaded before (by the warm-up or the measured load): with a working store
	// and no expiry, each is a load the cache could have saved.
	Loads, DuplicateLoads int
	Purges, PurgesOK      int // purges and invalidations, and how many returned nil

	FaultToEnd               time.Duration // from the fault to the failover's end
	PromotedAt               time.Duration // when the replica first said it was a master (0 with HasPromoted false)
	SwitchedAt               time.Duration // when a sentinel first published +switch-master (0 with HasSwitched false)
	HasPromoted, HasSwitched bool

	// BaselineHitRatio is the hit ratio of the requests for the failing master's keys before the fault.
	BaselineHitRatio float64
	// HitsResumed is when the hit ratio of those requests came back to at least half the baseline and
	// stayed there for a second (see resumeWindow); Resumed is false when it never did. NeverLost says
	// it never fell below that.
	HitsResumed          time.Duration
	Resumed, NeverLost   bool
	EventRequests        int           // requests that began between the fault and the failover's end
	EventP50, EventP99   time.Duration // their latency
	WorstSecondP99       time.Duration // the highest p99 of any one second of the measured load
	WorstSecondFromFault time.Duration // when that second began, relative to the fault

	// Timeline is the run in windows of timelineStep, from the start of the measured load.
	Timeline []Point

	// MaxStall is the longest the harness's own 5 ms sleep overslept during the run, EventStall during
	// the event: on a shared machine, time the process was not scheduled, which every latency includes.
	MaxStall, EventStall time.Duration

	BreakerTrips   uint64 // the replicas' circuit breaker openings (caches and loaders)
	StoreGetErrors uint64 // store reads that failed, as the replicas counted them
}

// Point is one window of a Result's timeline.
type Point struct {
	FromFault        time.Duration // the window's start, relative to the fault
	Requests, Failed int
	AffectedHits     float64 // hit ratio of the requests for the failed master's keys
	OtherHits        float64 // hit ratio of the other requests (none for Sentinel)
	P50, P99         time.Duration
}

// timelineStep is the width of a timeline window.
const timelineStep = 500 * time.Millisecond

// Bucket widths of the analysis.
const (
	hitBucket    = 100 * time.Millisecond // hit ratios are taken over this
	resumeWindow = time.Second            // hits must hold for this long to count as resumed
	minRequests  = 10                     // requests a resumeWindow needs to tell anything
)

// analyze turns a scenario's records into its Result.
func analyze(sc Scenario, m marks, rec records, snaps []stampede.Snapshot) Result {
	r := Result{Scenario: sc, FaultToEnd: m.end - m.fault}
	if m.promoted > 0 {
		r.PromotedAt, r.HasPromoted = m.promoted-m.end, true
	}
	if m.switched > 0 {
		r.SwitchedAt, r.HasSwitched = m.switched-m.end, true
	}
	for _, s := range snaps {
		r.BreakerTrips += s.BreakerTrips
		r.StoreGetErrors += s.StoreGetErrors
	}

	r.Requests, r.Unsent = len(rec.requests), rec.unsent
	for _, q := range rec.requests {
		if q.failed {
			r.Failed++
		}
	}
	r.Stale, r.StaleInEvent, r.StaleOld = countStale(rec.requests, rec.purges, rec.loads, m.fault)
	for _, st := range rec.stalls {
		r.MaxStall = max(r.MaxStall, st.late)
		if st.at >= m.fault && st.at <= m.end {
			r.EventStall = max(r.EventStall, st.late)
		}
	}
	r.Loads, r.DuplicateLoads = countLoads(rec.loads, m.begin)
	r.Purges = len(rec.purges)
	for _, p := range rec.purges {
		if p.ok {
			r.PurgesOK++
		}
	}

	eventEnd := m.end
	if sc.Fault == "none" {
		eventEnd = m.stop
	}
	var event []time.Duration
	for _, q := range rec.requests {
		if q.start >= m.fault && q.start <= eventEnd {
			event = append(event, q.end-q.start)
		}
	}
	r.EventRequests = len(event)
	r.EventP50, r.EventP99 = percentile(event, 0.50), percentile(event, 0.99)
	r.WorstSecondP99, r.WorstSecondFromFault = worstSecond(rec.requests, m.begin, m.stop)
	r.WorstSecondFromFault -= m.fault

	r.BaselineHitRatio, r.HitsResumed, r.Resumed, r.NeverLost = hitsResumed(rec.requests, rec.affected, m)
	r.Timeline = timeline(rec.requests, rec.affected, m)
	return r
}

// timeline cuts the measured load into windows of timelineStep by request start.
func timeline(requests []request, affected [2][]bool, m marks) []Point {
	n := int((m.stop - m.begin + timelineStep - 1) / timelineStep)
	if n <= 0 {
		return nil
	}
	type acc struct {
		lat                    []time.Duration
		failed, ah, an, oh, on int
	}
	accs := make([]acc, n)
	for _, q := range requests {
		i := int((q.start - m.begin) / timelineStep)
		if i < 0 || i >= n {
			continue
		}
		a := &accs[i]
		a.lat = append(a.lat, q.end-q.start)
		if q.failed {
			a.failed++
		}
		aff := affected[q.kind]
		if int(q.item) < len(aff) && aff[q.item] {
			a.an++
			if q.hit {
				a.ah++
			}
		} else {
			a.on++
			if q.hit {
				a.oh++
			}
		}
	}
	ratio := func(h, n int) float64 {
		if n == 0 {
			return 0
		}
		return float64(h) / float64(n)
	}
	points := make([]Point, n)
	for i, a := range accs {
		points[i] = Point{
			FromFault: m.begin + time.Duration(i)*timelineStep - m.fault,
			Requests:  len(a.lat), Failed: a.failed,
			AffectedHits: ratio(a.ah, a.an), OtherHits: ratio(a.oh, a.on),
			P50: percentile(a.lat, 0.5), P99: percentile(a.lat, 0.99),
		}
	}
	return points
}

// oldLoad is how long before a purge a load must have begun for its value to have been in the store
// when the purge ran: longer than a load and its store calls take (each bounded by the store timeout).
const oldLoad = 2 * time.Second

// countStale counts the answers that predate a purge of their item that returned nil before they
// began, those among them that began at or after fault, and those whose value was loaded more than
// oldLoad before that purge began.
func countStale(requests []request, purges []purge, loads []load, fault time.Duration) (stale, inEvent, old int) {
	type key struct {
		k    kind
		item int32
	}
	// For each item, its successful purges by end time, with the highest version purged so far and
	// the start of the purge that purged it.
	type done struct {
		end, start time.Duration
		version    int64
	}
	byItem := make(map[key][]done)
	for _, p := range purges {
		if p.ok {
			byItem[key{p.kind, p.item}] = append(byItem[key{p.kind, p.item}], done{p.end, p.start, p.version})
		}
	}
	for k, ds := range byItem {
		slices.SortFunc(ds, func(a, b done) int { return cmp.Compare(a.end, b.end) })
		for i := 1; i < len(ds); i++ {
			if ds[i-1].version > ds[i].version {
				ds[i].version, ds[i].start = ds[i-1].version, ds[i-1].start
			}
		}
		byItem[k] = ds
	}
	for _, q := range requests {
		if q.failed {
			continue
		}
		ds := byItem[key{q.kind, q.item}]
		// The last purge that ended before q began.
		i, _ := slices.BinarySearchFunc(ds, q.start, func(d done, t time.Duration) int {
			if d.end < t {
				return -1
			}
			return 1
		})
		if i == 0 {
			continue
		}
		if q.version < ds[i-1].version {
			stale++
			if q.start >= fault {
				inEvent++
			}
			if int(q.load) < len(loads) && loads[q.load].start < ds[i-1].start-oldLoad {
				old++
			}
		}
	}
	return stale, inEvent, old
}

// countLoads counts the loads that started at or after begin, and those among them that loaded a
// version of an item loaded before.
func countLoads(loads []load, begin time.Duration) (n, duplicates int) {
	type key struct {
		k       kind
		item    int32
		version int64
	}
	seen := make(map[key]bool, len(loads))
	for _, l := range loads {
		k := key{l.kind, l.item, l.version}
		if l.start >= begin {
			n++
			if seen[k] {
				duplicates++
			}
		}
		seen[k] = true
	}
	return n, duplicates
}

// percentile returns the p-th percentile (nearest rank) of ds, or 0 for none.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*p+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// worstSecond returns the highest p99 latency over the one-second windows of [begin, stop), by request
// start, and when that window began.
func worstSecond(requests []request, begin, stop time.Duration) (p99, at time.Duration) {
	n := int((stop - begin + time.Second - 1) / time.Second)
	if n <= 0 {
		return 0, begin
	}
	buckets := make([][]time.Duration, n)
	for _, q := range requests {
		if i := int((q.start - begin) / time.Second); i >= 0 && i < n {
			buckets[i] = append(buckets[i], q.end-q.start)
		}
	}
	at = begin
	for i, b := range buckets {
		if v := percentile(b, 0.99); v > p99 {
			p99, at = v, begin+time.Duration(i)*time.Second
		}
	}
	return p99, at
}

// hitsResumed returns the hit ratio of the requests for affected keys before the fault, and when,
// relative to the failover's end, their hit ratio came back to at least half of it (in windows of
// hitBucket) and held for resumeWindow; neverLost when it held from the fault on.
func hitsResumed(requests []request, affected [2][]bool, m marks) (baseline float64, at time.Duration, resumed, neverLost bool) {
	isAffected := func(q request) bool {
		a := affected[q.kind]
		return int(q.item) < len(a) && a[q.item]
	}
	var hits, total int
	for _, q := range requests {
		if q.start >= m.begin && q.start < m.fault && isAffected(q) {
			total++
			if q.hit {
				hits++
			}
		}
	}
	if total == 0 {
		return 0, 0, false, false
	}
	baseline = float64(hits) / float64(total)
	n := int((m.stop - m.fault) / hitBucket)
	if n <= 0 {
		return baseline, 0, false, false
	}
	type bucket struct{ hits, total int }
	buckets := make([]bucket, n)
	for _, q := range requests {
		if q.start < m.fault || !isAffected(q) {
			continue
		}
		if i := int((q.start - m.fault) / hitBucket); i < n {
			buckets[i].total++
			if q.hit {
				buckets[i].hits++
			}
		}
	}
	// A window without requests says nothing (the harness may not have been scheduled): it neither
	// breaks a run of good windows nor makes one, and a run needs minRequests requests in all.
	good := func(b bucket) bool { return b.total == 0 || float64(b.hits) >= baseline/2*float64(b.total) }
	hold := int(resumeWindow / hitBucket)
	for i := 0; i+hold <= n; i++ {
		ok, seen := buckets[i].total > 0, 0
		for j := i; ok && j < i+hold; j++ {
			ok = good(buckets[j])
			seen += buckets[j].total
		}
		ok = ok && seen >= minRequests
		if ok {
			start := m.fault + time.Duration(i)*hitBucket
			return baseline, start - m.end, true, i == 0 && allGood(buckets, good)
		}
	}
	return baseline, 0, false, false
}

// allGood reports whether every bucket is good.
func allGood[B any](buckets []B, good func(B) bool) bool {
	for _, b := range buckets {
		if !good(b) {
			return false
		}
	}
	return true
}
