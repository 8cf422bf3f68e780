package tieredstore

import (
	"context"
	"time"
)

// fleet is what L2 offers for stampede.WithFleetCoalescing (backends/redisstore does).
type fleet interface {
	TryLease(ctx context.Context, key string, lease time.Duration) (token string, held bool, err error)
	Release(ctx context.Context, key, token, outcome string) error
	WaitRelease(ctx context.Context, key string) (string, error)
}

// leaseFencer is L2's write fenced by a lease token, as the middleware used it before tickets.
type leaseFencer interface {
	SetExFenced(ctx context.Context, key string, value []byte, ttl time.Duration, token string) (bool, error)
}

// tags is what L2 offers for stampede.Cache.PurgeTag.
type tags interface {
	TagKeys(ctx context.Context, key string, tags []string, ttl time.Duration) error
	PurgeTag(ctx context.Context, tag string) (int, error)
}

// TryLease takes key's lease in L2. When L2 has no leases every lease is granted, which is per-process
// coalescing: the middleware then behaves as without fleet coalescing.
func (s *Store) TryLease(ctx context.Context, key string, lease time.Duration) (string, bool, error) {
	if f, ok := s.l2.(fleet); ok {
		return f.TryLease(ctx, key, lease)
	}
	return "", true, nil
}

// SetExFenced stores value in L2 while token holds key's lease there, and on success in L1 too.
func (s *Store) SetExFenced(ctx context.Context, key string, value []byte, ttl time.Duration, token string) (bool, error) {
	f, ok := s.l2.(leaseFencer)
	if !ok {
		return true, s.SetEx(ctx, key, value, ttl)
	}
	gen := s.generation(key)
	stored, err := f.SetExFenced(ctx, key, value, ttl, token)
	switch {
	case stored:
		s.wroteAt(ctx, key, value, gen)
	case err != nil:
		_ = s.dropL1(ctx, key) // the write may have landed
	}
	return stored, err
}

// Release releases key's lease in L2.
func (s *Store) Release(ctx context.Context, key, token, outcome string) error {
	if f, ok := s.l2.(fleet); ok {
		return f.Release(ctx, key, token, outcome)
	}
	return nil
}

// WaitRelease waits for key's lease in L2 to be released. Without leases there is nothing to wait for.
func (s *Store) WaitRelease(ctx context.Context, key string) (string, error) {
	if f, ok := s.l2.(fleet); ok {
		return f.WaitRelease(ctx, key)
	}
	return "gone", nil
}

// KeepsTags reports whether L2 keeps a tag index. When it does not, a stampede.Cache keeps its own
// in-process index instead of asking this store.
func (s *Store) KeepsTags() bool {
	_, ok := s.l2.(tags)
	return ok
}

// TagKeys records key's tags in L2's tag index; without one it does nothing.
func (s *Store) TagKeys(ctx context.Context, key string, tagList []string, ttl time.Duration) error {
	if t, ok := s.l2.(tags); ok {
		return t.TagKeys(ctx, key, tagList, ttl)
	}
	return nil
}

// PurgeTag purges tag through L2's tag index. When L2 says which keys it deleted (redisstore's
// PurgeTagKeys), their L1 copies are dropped before PurgeTag returns; otherwise L2's deletion
// announcements clear them as they arrive. Without a tag index in L2 it returns ErrUnsupported.
func (s *Store) PurgeTag(ctx context.Context, tag string) (int, error) {
	if t, ok := s.l2.(interface {
		PurgeTagKeys(ctx context.Context, tag string) ([]string, error)
	}); ok {
		keys, err := t.PurgeTagKeys(ctx, tag)
		for _, k := range keys {
			_ = s.dropL1(ctx, k)
		}
		return len(keys), err
	}
	if t, ok := s.l2.(tags); ok {
		return t.PurgeTag(ctx, tag)
	}
	return 0, ErrUnsupported
}
