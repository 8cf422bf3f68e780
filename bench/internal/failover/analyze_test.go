package failover

import (
	"testing"
	"time"
)

const msec = time.Millisecond

func TestCountStale(t *testing.T) {
	purges := []purge{
		{start: 100 * msec, end: 110 * msec, item: 1, kind: kindHTTP, ok: true, version: 1},
		{start: 200 * msec, end: 300 * msec, item: 1, kind: kindHTTP, ok: false, version: 2}, // failed: says nothing
		{start: 400 * msec, end: 410 * msec, item: 1, kind: kindHTTP, ok: true, version: 3},
		{start: 500 * msec, end: 510 * msec, item: 2, kind: kindLoader, ok: true, version: 1},
	}
	tests := []struct {
		name  string
		q     request
		stale bool
	}{
		{"before any purge", request{start: 50 * msec, item: 1, version: 0}, false},
		{"during the purge", request{start: 105 * msec, item: 1, version: 0}, false},
		{"after the purge, old version", request{start: 120 * msec, item: 1, version: 0}, true},
		{"after the purge, new version", request{start: 120 * msec, item: 1, version: 1}, false},
		{"after a failed purge, older than it", request{start: 350 * msec, item: 1, version: 1}, false},
		{"after the third purge, the second's version", request{start: 420 * msec, item: 1, version: 2}, true},
		{"after the third purge, its version", request{start: 420 * msec, item: 1, version: 3}, false},
		{"another front-end's purge", request{start: 600 * msec, item: 2, kind: kindHTTP, version: 0}, false},
		{"its own front-end's purge", request{start: 600 * msec, item: 2, kind: kindLoader, version: 0}, true},
		{"a failed request", request{start: 600 * msec, item: 2, kind: kindLoader, version: 0, failed: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stale, inEvent, _ := countStale([]request{tt.q}, purges, nil, 400*msec)
			if got := stale == 1; got != tt.stale {
				t.Fatalf("stale = %v, want %v", got, tt.stale)
			}
			if want := tt.stale && tt.q.start >= 400*msec; (inEvent == 1) != want {
				t.Fatalf("in the event = %d, want %v", inEvent, want)
			}
		})
	}
}

func TestCountLoads(t *testing.T) {
	loads := []load{
		{start: 0, item: 1, version: 0},                           // warm-up
		{start: 0, item: 1, version: 0, kind: kindLoader},         // warm-up, the other front-end
		{start: 10 * msec, item: 1, version: 0},                   // measured, a duplicate of the warm-up's
		{start: 20 * msec, item: 1, version: 1},                   // a new version
		{start: 30 * msec, item: 1, version: 1},                   // its duplicate
		{start: 40 * msec, item: 2, version: 0, kind: kindLoader}, // a first load
	}
	n, dup := countLoads(loads, 5*msec)
	if n != 4 || dup != 2 {
		t.Fatalf("loads %d, duplicates %d; want 4, 2", n, dup)
	}
}

func TestHitsResumed(t *testing.T) {
	affected := [2][]bool{{true, false}, {true, false}}
	m := marks{begin: 0, fault: time.Second, end: 3 * time.Second, stop: 6 * time.Second}
	var reqs []request
	// One request for the affected item and one for the other every 10 ms; the affected one hits
	// before the fault and from 3.5 s on, the other always.
	for at := time.Duration(0); at < m.stop; at += 10 * msec {
		reqs = append(reqs,
			request{start: at, end: at + msec, item: 0, hit: at < m.fault || at >= 3500*msec},
			request{start: at, end: at + msec, item: 1, hit: true})
	}
	baseline, at, resumed, neverLost := hitsResumed(reqs, affected, m)
	if baseline != 1 || !resumed || neverLost || at != 500*msec {
		t.Fatalf("baseline %v, resumed %v at %v, never lost %v; want 1, true at 500ms, false", baseline, resumed, at, neverLost)
	}

	for i := range reqs {
		reqs[i].hit = true
	}
	if _, _, resumed, neverLost := hitsResumed(reqs, affected, m); !resumed || !neverLost {
		t.Fatalf("all hits: resumed %v, never lost %v", resumed, neverLost)
	}

	for i := range reqs {
		reqs[i].hit = reqs[i].start < m.fault
	}
	if _, _, resumed, _ := hitsResumed(reqs, affected, m); resumed {
		t.Fatal("no hit after the fault, but resumed")
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*msec)
	}
	if p := percentile(ds, 0.5); p != 50*msec {
		t.Errorf("p50 = %v", p)
	}
	if p := percentile(ds, 0.99); p != 99*msec {
		t.Errorf("p99 = %v", p)
	}
	if p := percentile(nil, 0.99); p != 0 {
		t.Errorf("p99 of nothing = %v", p)
	}
}

func TestParseAnswer(t *testing.T) {
	for _, k := range []kind{kindHTTP, kindLoader} {
		v, id, ok := parseAnswer(`"` + answer(k, 12, 3, 45) + `"`) // as the loader's JSON codec stores it
		if !ok || v != 3 || id != 45 {
			t.Errorf("kind %d: %d, %d, %v", k, v, id, ok)
		}
	}
	if _, _, ok := parseAnswer("not an answer"); ok {
		t.Error("parsed a non-answer")
	}
}

func TestParseScenario(t *testing.T) {
	for _, sc := range Scenarios() {
		for _, s := range []string{sc.String(), sc.Topology + "-" + sc.Fault} {
			if got, err := ParseScenario(s); err != nil || got != sc {
				t.Errorf("ParseScenario(%q) = %v, %v", s, got, err)
			}
		}
	}
	if _, err := ParseScenario("ring-kill"); err == nil {
		t.Error("ParseScenario(ring-kill): no error")
	}
}

// TestStaleOld: a stale answer whose value was loaded long before the purge began is a lost deletion;
// one loaded just before it is a late write.
func TestStaleOld(t *testing.T) {
	loads := []load{{start: 0}, {start: 9900 * msec}}
	purges := []purge{{start: 10 * time.Second, end: 10010 * msec, ok: true, version: 1}}
	reqs := []request{
		{start: 11 * time.Second, version: 0, load: 0}, // the warm-up's value, still there
		{start: 11 * time.Second, version: 0, load: 1}, // loaded 100 ms before the purge, stored after it
	}
	stale, _, old := countStale(reqs, purges, loads, 0)
	if stale != 2 || old != 1 {
		t.Fatalf("stale %d, old %d; want 2, 1", stale, old)
	}
}
