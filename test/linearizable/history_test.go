package linearizable

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// recorder records a history: every operation with its call and return stamps, from one logical clock
// (an operation that returned before another was called has the smaller stamp).
type recorder struct {
	clock atomic.Int64
	mu    sync.Mutex
	ops   []porcupine.Operation
	// gate, for a fleet, keeps reads from overlapping invalidations and sets (see fleetGate).
	gate *sync.RWMutex
}

// fleetGate is what a fleet's history checks: replicas learn of one another's invalidations by
// announcements, so a read on one replica that overlaps an invalidation made through another may be
// served by a flight the invalidation has not reached yet while a third read already saw a newer
// value (docs/behaviour.md §11 states the bound). A fleet's history therefore runs its invalidations
// and sets apart from its reads (changes of the source still overlap everything), and checks that once
// one returned (its announcement delivered, see history.settle) no replica serves what it removed.
func (r *recorder) lock(in op) func() {
	if r.gate == nil {
		return func() {}
	}
	switch in.Kind {
	case "invalidate", "set":
		r.gate.Lock()
		return r.gate.Unlock
	case "get", "refresh":
		r.gate.RLock()
		return r.gate.RUnlock
	}
	return func() {}
}

// do runs f as client's operation in and records it with the output f returns.
func (r *recorder) do(client int, in op, f func() any) {
	defer r.lock(in)()
	call := r.clock.Add(1)
	out := f()
	ret := r.clock.Add(1)
	r.mu.Lock()
	r.ops = append(r.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
	r.mu.Unlock()
}

// add records, for each key, an invalidation that client made between call and ret: one operation that
// reaches several keys (a tag purge) is one operation per key over the same interval.
func (r *recorder) add(client, replica int, call, ret int64, keys []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range keys {
		in := op{Kind: "invalidate", Key: k, Via: "PurgeTag", Replica: replica}
		r.ops = append(r.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Return: ret})
	}
}

// source is the versions of the keys the test changes, read by the loads and handlers.
type source struct {
	mu       sync.Mutex
	versions map[string]int
}

func newSource() *source { return &source{versions: map[string]int{}} }

// read returns key's version now.
func (s *source) read(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.versions[key]
}

// change moves key to its next version and returns it.
func (s *source) change(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.versions[key]++
	return s.versions[key]
}

// init gives every key version 1.
func (s *source) init(keys []string) {
	for _, k := range keys {
		s.versions[k] = 1
	}
}

// jitter delays the caller by a little, now and then: it lets other goroutines in between any two steps
// of a store call, a load or a handler, where a real deployment's network and scheduler would.
func jitter(rng *rand.Rand) {
	switch n := rng.IntN(10); {
	case n < 6:
		runtime.Gosched()
	case n < 9:
		time.Sleep(time.Duration(rng.IntN(50)) * time.Microsecond)
	default:
		time.Sleep(time.Duration(50+rng.IntN(300)) * time.Microsecond)
	}
}

// lockedRand is a rand.Rand shared by goroutines.
type lockedRand struct {
	mu    sync.Mutex
	rng   *rand.Rand
	trace *trace // where the stores of the history record their calls; nil: nowhere
}

func (l *lockedRand) jitter() {
	l.mu.Lock()
	seed := l.rng.Uint64()
	l.mu.Unlock()
	jitter(rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)))
}

// settings says how many histories a test checks, and from which seed.
type settings struct {
	histories int
	seed      uint64
}

// testSettings reads LINEARIZABLE_HISTORIES (default: short) and LINEARIZABLE_SEED (default: the clock).
func testSettings(t *testing.T, short int) settings {
	s := settings{histories: short, seed: uint64(time.Now().UnixNano())}
	if v := os.Getenv("LINEARIZABLE_HISTORIES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("LINEARIZABLE_HISTORIES=%q: want a positive number", v)
		}
		s.histories = n
	}
	if v := os.Getenv("LINEARIZABLE_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("LINEARIZABLE_SEED=%q: want a number", v)
		}
		s.seed = n
	}
	return s
}

// check checks one history of kind, recorded by test ("loader" or "http"). A history that is not
// linearizable is reported with its seed, minimised, and kept in a file (see keep) whose path the report
// gives; calls is what its stores did (nil: not traced).
func check(t *testing.T, test, kind string, seed uint64, ops []porcupine.Operation, calls *trace) bool {
	t.Helper()
	model := modelFor(kind)
	res, info := porcupine.CheckOperationsVerbose(model, ops, time.Minute)
	switch res {
	case porcupine.Ok:
		return true
	case porcupine.Unknown:
		t.Errorf("%s: seed %d: the checker timed out on a history of %d operations", kind, seed, len(ops))
		return false
	}
	minimal := minimise(kind, model, ops)
	var failing []porcupine.Operation
	for _, part := range model.Partition(ops) {
		if !porcupine.CheckOperations(model, part) {
			failing = part
			break
		}
	}
	var lines []string
	if calls != nil {
		calls.mu.Lock()
		lines = slices.Clone(calls.lines)
		calls.mu.Unlock()
	}
	path, err := keep(keptHistory{Test: test, Kind: kind, Seed: seed, History: toKept(failing), Minimised: toKept(minimal), StoreCalls: lines},
		model, info)
	if err != nil {
		path = fmt.Sprintf("(not kept: %v)", err)
	}
	t.Errorf("%s: seed %d: history not linearizable (%d operations; minimised to %d), kept in %s "+
		"(copy it to test/linearizable/testdata/ to keep it as a regression test, see TestRegressions):\n%s\nthe key's whole history:\n%s\nstore calls:\n%s",
		kind, seed, len(ops), len(minimal), path, describe(minimal), describe(failing), strings.Join(lines, "\n"))
	return false
}

// minimise removes operations from a history that is not linearizable as long as what is left is not
// linearizable either (whole keys first, then single reads and invalidations): the witness to keep. It
// removes only what cannot be the reason another operation was allowed, so that what is left fails for
// a reason the whole history had: every change and set is kept (the values the reads saw come from them),
// and, except in a fleet's model (where no read changes the state), so is every read that returned a
// version of the source another read returned (it may be the load that kept the version the other one
// found; a value that a set stored is never loaded). Dropping an invalidation only lets more through.
func minimise(kind string, model porcupine.Model, ops []porcupine.Operation) []porcupine.Operation {
	fails := func(h []porcupine.Operation) bool { return !porcupine.CheckOperations(model, h) }
	// Keep only the keys that fail.
	for _, part := range model.Partition(ops) {
		if fails(part) {
			ops = part
			break
		}
	}
	explains := func(i int) bool {
		if v, ok := ops[i].Output.(int); kind == "fleet" || !ok || v >= setBase {
			return false
		}
		for j, o := range ops {
			if k := o.Input.(op).Kind; j != i && (k == "get" || k == "refresh") && o.Output == ops[i].Output {
				return true
			}
		}
		return false
	}
	for changed := true; changed; {
		changed = false
		for i := len(ops) - 1; i >= 0; i-- {
			switch ops[i].Input.(op).Kind {
			case "change", "set":
				continue
			case "get", "refresh":
				if explains(i) {
					continue
				}
			}
			smaller := slices.Delete(slices.Clone(ops), i, i+1)
			if len(smaller) > 0 && fails(smaller) {
				ops, changed = smaller, true
			}
		}
	}
	return ops
}

// describe prints a history in call order.
func describe(ops []porcupine.Operation) string {
	ops = slices.Clone(ops)
	slices.SortFunc(ops, func(a, b porcupine.Operation) int { return int(a.Call - b.Call) })
	var out string
	for _, o := range ops {
		out += fmt.Sprintf("  client %d [%d, %d] replica %d: %s\n", o.ClientId, o.Call, o.Return, o.Input.(op).Replica,
			model.DescribeOperation(o.Input, o.Output))
	}
	return out
}

// run is what a history of either front-end holds while it runs: the test, the kind and seed it is of,
// the source the loads read, the record of the operations, the random delays and the stores to close.
type run struct {
	t      *testing.T
	kind   string
	seed   uint64
	src    *source
	rec    *recorder
	rng    *lockedRand
	h      *history
	failed atomic.Bool // an operation failed: the history is not checked
}

func newRun(t *testing.T, kind string, seed uint64) run {
	return run{t: t, kind: kind, seed: seed, src: newSource(), rec: &recorder{}, h: &history{}}
}
