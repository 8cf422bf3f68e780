package tieredstore

import "context"

// batchGetter is a tier that reads many keys in one round trip (backends/redisstore).
type batchGetter interface {
	BatchGet(ctx context.Context, keys []string) ([][]byte, error)
}

// BatchGet returns the entries stored under keys (values[i] belongs to keys[i], nil when missing): each
// from L1 when it is there, the others from L2 in one call when L2 reads many keys at once (redisstore's
// BatchGet: one MGET per cluster slot), else one Get each. L2 hits are copied into L1, as Get does. An
// L2 error is returned with the values that could be read.
func (s *Store) BatchGet(ctx context.Context, keys []string) ([][]byte, error) {
	values := make([][]byte, len(keys))
	var missing []string
	var at []int
	for i, k := range keys {
		if v, ok, err := s.l1.Get(ctx, k); err == nil && ok {
			values[i] = v
			s.l1Hits.Add(1)
			continue
		}
		missing, at = append(missing, k), append(at, i)
	}
	if len(missing) == 0 {
		return values, nil
	}
	var l2 [][]byte
	var err error
	if b, ok := s.l2.(batchGetter); ok {
		l2, err = b.BatchGet(ctx, missing)
	} else {
		l2 = make([][]byte, len(missing))
		for j, k := range missing {
			v, found, gerr := s.l2.Get(ctx, k)
			if gerr != nil {
				err = gerr
				continue
			}
			if found {
				l2[j] = v
			}
		}
	}
	for j, i := range at {
		if j < len(l2) && l2[j] != nil {
			values[i] = l2[j]
			s.l2Hits.Add(1)
			s.fill(ctx, keys[i], l2[j])
		} else {
			s.misses.Add(1)
		}
	}
	return values, err
}
