package redisstore

import (
	"cmp"
	"context"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"
)

// batchMode says which keys one MGET may carry.
type batchMode uint8

const (
	// batchOne: a single node holds every key, so one MGET carries them all.
	batchOne batchMode = iota
	// batchBySlot: a Redis Cluster answers an MGET only for keys in one hash slot.
	batchBySlot
	// batchByTag: a client that shards on its own (redis.Ring, unknown clients) keeps keys together only
	// when they share a hash tag, so an MGET carries keys with the same tag.
	batchByTag
)

// BatchGet returns the entries stored under keys: values[i] belongs to keys[i] and is nil when the key
// is missing (values are decoded as Get decodes them). It sends one MGET per group of keys that one node
// can answer: a single MGET on a single node or Sentinel client, one per hash slot on a cluster client
// (one pipeline per master, the masters asked in parallel), one per hash tag on other clients.
//
// If some groups fail, the values of the others are still returned, with an error that counts the
// failures and wraps the first; keys of failed groups read as nil. On a cluster a master that is down
// or stalled fails its own keys only: the other masters' values come back (when the stalled one's
// time runs out). A value is never attributed to the wrong key.
func (s *Store) BatchGet(ctx context.Context, keys []string) ([][]byte, error) {
	if len(keys) == 0 {
		return [][]byte{}, nil
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = s.key(k)
	}
	return s.batchGetRaw(ctx, full)
}

// batchGetRaw is BatchGet for Redis keys (prefixed already), within ctx.
func (s *Store) batchGetRaw(ctx context.Context, full []string) ([][]byte, error) {
	values := make([][]byte, len(full))
	if s.batch == batchOne {
		vals, err := s.mget(ctx, full)
		if err != nil {
			return values, opError(ctx, "batchget", err)
		}
		fill(values, nil, vals, s.cfg.maxValue)
		return values, nil
	}

	groups := s.group(full)
	perNode := s.byNode(ctx, groups)
	var failed int
	var firstErr error
	if len(perNode) == 1 {
		failed, firstErr = s.mgetGroups(ctx, perNode[0], values)
	} else {
		// One pipeline per master, in parallel: each fills the values of its own keys only.
		type outcome struct {
			failed int
			err    error
		}
		outcomes := make([]outcome, len(perNode))
		var wg sync.WaitGroup
		for i, gs := range perNode {
			wg.Go(func() {
				f, err := s.mgetGroups(ctx, gs, values)
				outcomes[i] = outcome{f, err}
			})
		}
		wg.Wait()
		for _, o := range outcomes {
			failed += o.failed
			firstErr = cmp.Or(firstErr, o.err)
		}
	}
	if failed > 0 {
		// Groups usually fail for one reason (a node down), so report the first rather than a long list.
		return values, opError(ctx, "batchget", fmt.Errorf("%d of %d MGETs failed, first: %w", failed, len(groups), firstErr))
	}
	return values, nil
}

// byNode splits groups by the master that serves them on a cluster client, in order of first
// appearance; on other clients they stay together (the client routes them itself).
func (s *Store) byNode(ctx context.Context, groups []keyGroup) [][]keyGroup {
	if s.batch != batchBySlot || len(groups) < 2 {
		return [][]keyGroup{groups}
	}
	var out [][]keyGroup
	index := make(map[string]int)
	for _, g := range groups {
		node := s.nodeOf(ctx, g.keys[0])
		i, ok := index[node]
		if !ok {
			i = len(out)
			index[node] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], g)
	}
	return out
}

// mgetGroups sends one MGET per group in one pipeline and fills values with the replies. It returns
// how many groups failed and the first error. A failure also asks a cluster client to reload its slot
// map (routing.go).
func (s *Store) mgetGroups(ctx context.Context, groups []keyGroup, values [][]byte) (failed int, firstErr error) {
	cmds := make([]*redis.SliceCmd, len(groups))
	run := func(ctx context.Context) (struct{}, error) {
		_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, g := range groups {
				cmds[i] = p.MGet(ctx, g.keys...)
			}
			return nil
		})
		return struct{}{}, err
	}
	var err error
	if s.guarded {
		_, err = guard(ctx, run)
	} else {
		_, err = run(ctx)
	}
	if err != nil {
		s.nodeFailed(err)
		if s.guarded && ctx.Err() != nil {
			// Abandoned: the pipeline may still be filling cmds on its goroutine, so read none of them.
			return len(groups), err
		}
	}
	firstErr = err
	for i, g := range groups {
		if cmds[i] == nil { // not queued: Pipelined failed before running our function
			failed++
			continue
		}
		vals, err := cmds[i].Result()
		if err != nil {
			firstErr = cmp.Or(firstErr, err)
			failed++
			continue
		}
		fill(values, g.idx, vals, s.cfg.maxValue)
	}
	return failed, firstErr
}

// mget sends one MGET, on another goroutine when the client ignores deadlines.
func (s *Store) mget(ctx context.Context, keys []string) ([]any, error) {
	if s.guarded {
		return guard(ctx, func(ctx context.Context) ([]any, error) {
			return s.client.MGet(ctx, keys...).Result()
		})
	}
	return s.client.MGet(ctx, keys...).Result()
}

// fill decodes MGET replies into values (see decode for limit): reply j belongs to values[idx[j]], or values[j] when idx is nil.
func fill(values [][]byte, idx []int, replies []any, limit int64) {
	for j, r := range replies {
		i := j
		if idx != nil {
			if j >= len(idx) {
				return
			}
			i = idx[j]
		} else if j >= len(values) {
			return
		}
		if v, ok := r.(string); ok { // nil for a missing key
			values[i] = decode([]byte(v), limit)
		}
	}
}

// keyGroup is the keys one MGET carries and their positions in the caller's slice.
type keyGroup struct {
	keys []string
	idx  []int
}

// group splits keys into MGET groups by slot or by hash tag, in order of first appearance.
func (s *Store) group(keys []string) []keyGroup {
	var groups []keyGroup
	bySlot := make(map[int]int)   // slot -> index in groups
	byTag := make(map[string]int) // hash tag -> index in groups
	for i, k := range keys {
		var (
			gi int
			ok bool
		)
		if s.batch == batchBySlot {
			sl := slot(k)
			if gi, ok = bySlot[sl]; !ok {
				gi = len(groups)
				bySlot[sl] = gi
				groups = append(groups, keyGroup{})
			}
		} else {
			tag := hashTag(k)
			if gi, ok = byTag[tag]; !ok {
				gi = len(groups)
				byTag[tag] = gi
				groups = append(groups, keyGroup{})
			}
		}
		groups[gi].keys = append(groups[gi].keys, k)
		groups[gi].idx = append(groups[gi].idx, i)
	}
	return groups
}
