package redisstore

import (
	"cmp"
	"context"
	"fmt"

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
// (pipelined, so the nodes are asked in parallel), one per hash tag on other clients.
//
// If some groups fail, the values of the others are still returned, with an error that counts the
// failures and wraps the first; keys of failed groups read as nil. On a cluster this is best effort:
// when go-redis runs out of time retrying one unreachable node, it fails the whole pipeline, so every
// key reads as nil. A value is never attributed to the wrong key.
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
		fill(values, nil, vals)
		return values, nil
	}

	groups := s.group(full)
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
	if err != nil && s.guarded && ctx.Err() != nil {
		// Abandoned: the pipeline may still be filling cmds on its goroutine, so read none of them.
		return values, opError(ctx, "batchget", err)
	}
	firstErr, failed := err, 0
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
		fill(values, g.idx, vals)
	}
	if failed > 0 {
		// Groups usually fail for one reason (a node down), so report the first rather than a long list.
		return values, opError(ctx, "batchget", fmt.Errorf("%d of %d MGETs failed, first: %w", failed, len(groups), firstErr))
	}
	return values, nil
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

// fill decodes MGET replies into values: reply j belongs to values[idx[j]], or values[j] when idx is nil.
func fill(values [][]byte, idx []int, replies []any) {
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
			values[i] = decode([]byte(v))
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
