package linearizable

// This file covers what happens to a history that fails the check: it is written to a file (keep), and
// a file copied under testdata/ is a regression test (TestRegressions) that replays it.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/anishathalye/porcupine"
)

// keptHistory is a failing history as kept in a file: enough to read it, to check it again against the
// model, and to replay it (see replay).
type keptHistory struct {
	Test       string   `json:"test"` // "loader" (TestLoaderLinearizable) or "http" (TestCacheLinearizable)
	Kind       string   `json:"kind"` // the store kind, as its subtest is named
	Seed       uint64   `json:"seed"` // LINEARIZABLE_SEED for the history's run
	History    []keptOp `json:"history"`
	Minimised  []keptOp `json:"minimised"` // a part of History that is not linearizable either
	StoreCalls []string `json:"store_calls,omitempty"`
	Note       string   `json:"note,omitempty"` // for a file under testdata/: what it caught and what fixed it
}

// keptOp is one operation of a kept history. Call and Return are the recorder's logical stamps.
type keptOp struct {
	Client int   `json:"client"`
	Call   int64 `json:"call"`
	Return int64 `json:"return"`
	Input  op    `json:"input"`
	Output *int  `json:"output,omitempty"` // what a get, a refresh or a change returned
}

func toKept(ops []porcupine.Operation) []keptOp {
	out := make([]keptOp, 0, len(ops))
	for _, o := range ops {
		k := keptOp{Client: o.ClientId, Call: o.Call, Return: o.Return, Input: o.Input.(op)}
		if v, ok := o.Output.(int); ok {
			k.Output = &v
		}
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b keptOp) int { return int(a.Call - b.Call) })
	return out
}

func fromKept(ops []keptOp) []porcupine.Operation {
	out := make([]porcupine.Operation, 0, len(ops))
	for _, k := range ops {
		o := porcupine.Operation{ClientId: k.Client, Call: k.Call, Return: k.Return, Input: k.Input}
		if k.Output != nil {
			o.Output = *k.Output
		}
		out = append(out, o)
	}
	return out
}

// keep writes h to a new file under LINEARIZABLE_KEEP (default: the system's temporary directory), with
// porcupine's visualisation of the history beside it (the same name, .html), and returns its path.
func keep(h keptHistory, model porcupine.Model, info porcupine.LinearizationInfo) (string, error) {
	dir := os.Getenv("LINEARIZABLE_KEEP")
	if dir == "" {
		dir = os.TempDir()
	}
	b, err := json.MarshalIndent(h, "", "\t")
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, fmt.Sprintf("linearizable-%s-%s-%d-*.json", h.Test, h.Kind, h.Seed))
	if err != nil {
		return "", err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		_ = f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	// The visualisation is a convenience: a history that cannot be drawn is still kept.
	_ = porcupine.VisualizePath(model, info, f.Name()[:len(f.Name())-len(".json")]+".html")
	return f.Name(), nil
}

// readKept reads a kept history.
func readKept(path string) (keptHistory, error) {
	var h keptHistory
	b, err := os.ReadFile(path)
	if err != nil {
		return h, err
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return h, fmt.Errorf("%s: %w", path, err)
	}
	if h.Test != "loader" && h.Test != "http" || len(h.History) == 0 {
		return h, fmt.Errorf("%s: want a test (loader or http) and a history", path)
	}
	return h, nil
}

// TestRegressions checks each failing history kept under testdata/: the model must still reject it and
// its minimised part (a model loosened until a witness passes would pass the defect it witnessed), and
// replaying its operations against its kind (see replay) must be linearizable every time, as often as
// LINEARIZABLE_HISTORIES says (default 50).
func TestRegressions(t *testing.T) {
	paths, err := filepath.Glob("testdata/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Skip("no history kept under testdata/")
	}
	cfg := testSettings(t, 50)
	kinds := allKinds(t)
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			h, err := readKept(path)
			if err != nil {
				t.Fatal(err)
			}
			model := modelFor(h.Kind)
			for name, ops := range map[string][]keptOp{"history": h.History, "minimised": h.Minimised} {
				if len(ops) > 0 && porcupine.CheckOperations(model, fromKept(ops)) {
					t.Errorf("the model accepts the kept %s:\n%s", name, describe(fromKept(ops)))
				}
			}
			t.Logf("seed %d, %d replays (LINEARIZABLE_SEED, LINEARIZABLE_HISTORIES)", cfg.seed, cfg.histories)
			for i := range cfg.histories {
				if !replay(t, kinds, h, h.Kind, cfg.seed+uint64(i), fmt.Sprintf("lin-replay-%s-%d-%d", h.Kind, cfg.seed, i)) {
					return
				}
			}
		})
	}
}

// kinds is every store kind of both tests, for replays.
type kinds struct {
	loader []loaderKind
	cache  []cacheKind
}

func allKinds(t *testing.T) kinds { return kinds{loaderKinds(t), cacheKinds(t)} }

// replay runs the operations of h's history again against kind and checks what they returned. Each
// client runs its operations in order, and an operation begins only once every operation that had
// returned before it was called in h has returned again: the replay keeps the history's real-time
// order and lets what overlapped overlap, with new random delays. It reports whether the replay was
// linearizable.
func replay(t *testing.T, all kinds, h keptHistory, kind string, seed uint64, prefix string) bool {
	ops := slices.Clone(h.History)
	slices.SortFunc(ops, func(a, b keptOp) int { return int(a.Call - b.Call) })
	// A tag purge of the middleware is one operation per URL over the same interval: run it once.
	ops = slices.CompactFunc(ops, func(a, b keptOp) bool {
		return a.Input.Via == "PurgeTag" && b.Input.Via == "PurgeTag" && a.Client == b.Client && a.Call == b.Call
	})
	var keys []string
	for _, o := range ops {
		if !slices.Contains(keys, o.Input.Key) {
			keys = append(keys, o.Input.Key)
		}
	}
	var perform func(client int, in op)
	var check func(test string) bool
	switch h.Test {
	case "loader":
		i := slices.IndexFunc(all.loader, func(k loaderKind) bool { return k.name == kind })
		if i < 0 {
			t.Fatalf("no loader kind %q", kind)
		}
		run := newLoaderRun(t, all.loader[i], seed, prefix, keys)
		defer run.h.close()
		perform, check = run.perform, run.check
	case "http":
		i := slices.IndexFunc(all.cache, func(k cacheKind) bool { return k.name == kind })
		if i < 0 {
			t.Fatalf("no cache kind %q", kind)
		}
		run := newCacheRun(t, all.cache[i], seed, prefix)
		defer run.h.close()
		perform, check = run.perform, run.check
	}
	done := make([]chan struct{}, len(ops))
	for i := range done {
		done[i] = make(chan struct{})
	}
	byClient := map[int][]int{}
	for i, o := range ops {
		byClient[o.Client] = append(byClient[o.Client], i)
	}
	var wg sync.WaitGroup
	for client, mine := range byClient {
		wg.Go(func() {
			for _, i := range mine {
				for j, before := range ops {
					if before.Return < ops[i].Call {
						<-done[j]
					}
				}
				in := ops[i].Input
				if in.Kind == "set" {
					in.Value = setBase + int(setValues.Add(1))
				}
				perform(client, in)
				close(done[i])
			}
		})
	}
	wg.Wait()
	return check(h.Test)
}
