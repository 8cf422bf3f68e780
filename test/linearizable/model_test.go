package linearizable

import (
	"fmt"
	"slices"

	"github.com/anishathalye/porcupine"
)

// The sequential model of a cache in front of a source of versions. The source of each key is a
// version number that the test changes ("change"); the cache holds, per key (per variant of an HTTP
// response), the version it would serve, or none. A read may return what the cache holds, or the
// source's current version (it loaded, because it found nothing, or because what was kept was evicted
// or skipped: returning something fresher is never wrong); then the cache holds that, or still what it
// held (a load's write may be refused, superseded or skipped). A refresh is a read that loads. An
// invalidation empties the cache; a set puts a value in it. What a read may never return is a version
// that is neither: a value that an invalidation which returned before the read began had removed (or
// that a set replaced), or a value older than the source when the read found nothing kept. The model is
// nondeterministic only in whether a load's value is kept.

// op is one operation of a history: its kind, the key (a partition of its own), and the variant of an
// HTTP request (0 or 1; 0 for keys that do not vary). Value is a set's value.
type op struct {
	Kind    string `json:"kind"` // "get", "set", "invalidate", "refresh", "change"
	Key     string `json:"key"`
	Variant int    `json:"variant,omitempty"`
	Value   int    `json:"value,omitempty"`
	Via     string `json:"via,omitempty"`     // what made an invalidation (Purge, POST, PurgeTag, Invalidate)
	Replica int    `json:"replica,omitempty"` // which loader or cache of a fleet ran it (0 outside a fleet)
}

// variants is how many variants the model keeps per key.
const variants = 2

// state is one key's state: what the cache holds per variant (0: nothing) and the source's version.
type state struct {
	cached [variants]int
	source int
}

// model is the sequential specification, partitioned by key.
var model = (&porcupine.NondeterministicModel{
	Partition: partition,
	Init:      func() []any { return []any{state{source: 1}} }, // every key starts at version 1 (source.init)
	Step: func(s, in, out any) []any {
		st, o := s.(state), in.(op)
		switch o.Kind {
		case "get":
			v := out.(int)
			var next []any
			if st.cached[o.Variant] != 0 && v == st.cached[o.Variant] {
				next = append(next, st)
			}
			if v == st.source {
				next = append(next, st) // loaded, not kept
				kept := st
				kept.cached[o.Variant] = v
				next = append(next, kept)
			}
			return next
		case "refresh":
			if v := out.(int); v == st.source {
				kept := st
				kept.cached[o.Variant] = v
				return []any{st, kept}
			}
			return nil
		case "set":
			st.cached[o.Variant] = o.Value
			return []any{st}
		case "invalidate":
			st.cached = [variants]int{}
			return []any{st}
		case "change":
			if v := out.(int); v == st.source+1 {
				st.source = v
				return []any{st}
			}
			return nil
		}
		panic("linearizable: unknown operation " + o.Kind)
	},
	DescribeOperation: func(in, out any) string {
		o := in.(op)
		switch o.Kind {
		case "get", "refresh", "change":
			return fmt.Sprintf("%s(%s/%d) -> %v", o.Kind, o.Key, o.Variant, out)
		case "set":
			return fmt.Sprintf("set(%s/%d, %d)", o.Key, o.Variant, o.Value)
		}
		return fmt.Sprintf("%s(%s) via %s", o.Kind, o.Key, o.Via)
	},
	DescribeState: func(s any) string {
		st := s.(state)
		return fmt.Sprintf("cached=%v source=%d", st.cached, st.source)
	},
}).ToModel()

// partition splits a history by key: the keys are independent.
func partition(history []porcupine.Operation) [][]porcupine.Operation {
	byKey := map[string][]porcupine.Operation{}
	var order []string
	for _, o := range history {
		k := o.Input.(op).Key
		if _, ok := byKey[k]; !ok {
			order = append(order, k)
		}
		byKey[k] = append(byKey[k], o)
	}
	parts := make([][]porcupine.Operation, 0, len(order))
	for _, k := range order {
		parts = append(parts, byKey[k])
	}
	return parts
}

// modelFor returns the model a kind's histories are checked against: fleetModel for a fleet, model
// otherwise.
func modelFor(kind string) porcupine.Model {
	if kind == "fleet" {
		return fleetModel
	}
	return model
}

// fleetState is one key's state for a fleet: the source's version, and per variant the oldest source
// version a read may still return (the source's version when the last invalidation or set took effect)
// and the values set since then.
type fleetState struct {
	source int
	floor  [variants]int
	sets   [variants][maxSets]int // 0: none
}

const maxSets = 8

// fleetModel is what a fleet of replicas promises (docs/behaviour.md §11): replicas keep and load values
// of their own, so between two invalidations reads on different replicas may return any version loaded
// since the last one, in any order; what no read may return is a value that an invalidation or a set
// (counted as done once every replica heard of it, and never overlapping a read: see fleetGate) removed
// or replaced. A refresh loads the source's version.
var fleetModel = (&porcupine.NondeterministicModel{
	Partition: partition,
	Init: func() []any {
		st := fleetState{source: 1}
		for i := range st.floor {
			st.floor[i] = 1
		}
		return []any{st}
	},
	Step: func(s, in, out any) []any {
		st, o := s.(fleetState), in.(op)
		switch o.Kind {
		case "get", "refresh":
			v := out.(int)
			if v == st.source || o.Kind == "get" && (v >= st.floor[o.Variant] && v < st.source || slices.Contains(st.sets[o.Variant][:], v) && v != 0) {
				return []any{st}
			}
			return nil
		case "set":
			st.floor[o.Variant] = st.source
			var sets [maxSets]int
			sets[0] = o.Value
			st.sets[o.Variant] = sets
			return []any{st}
		case "invalidate":
			for i := range st.floor {
				st.floor[i] = st.source
			}
			st.sets = [variants][maxSets]int{}
			return []any{st}
		case "change":
			if v := out.(int); v == st.source+1 {
				st.source = v
				return []any{st}
			}
			return nil
		}
		panic("linearizable: unknown operation " + o.Kind)
	},
	DescribeOperation: model.DescribeOperation,
	DescribeState: func(s any) string {
		st := s.(fleetState)
		return fmt.Sprintf("source=%d floor=%v sets=%v", st.source, st.floor, st.sets)
	},
}).ToModel()
