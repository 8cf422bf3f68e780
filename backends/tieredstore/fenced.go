package tieredstore

import (
	"context"
	"errors"
	"time"
)

// fencer is what L2 offers for writes fenced against invalidations (stampede.FencedStore): the SQL
// stores and backends/redisstore do.
type fencer interface {
	Ticket(ctx context.Context, key string, ttl time.Duration) (string, error)
	SetFenced(ctx context.Context, key, ticket, writeKey string, value []byte, ttl time.Duration, tags []string) (bool, error)
	Invalidate(ctx context.Context, key string) error
}

// unfenced is the ticket of a Store whose L2 has none.
const unfenced = "unfenced"

// Ticket takes a ticket for key in L2. When L2 has no tickets it returns a ticket that fences nothing,
// and SetFenced then writes as SetEx does: the Store is then as fenced as L2 is, which is not at all.
func (s *Store) Ticket(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if f, ok := s.l2.(fencer); ok {
		return f.Ticket(ctx, key, ttl)
	}
	return unfenced, nil
}

// SetFenced writes value under writeKey in L2 unless ticket was revoked there (see
// stampede.FencedStore), and on success in L1 too, unless writeKey was invalidated meanwhile. An L2
// error drops L1's copy (the write may have landed).
func (s *Store) SetFenced(ctx context.Context, key, ticket, writeKey string, value []byte, ttl time.Duration, tags []string) (bool, error) {
	f, ok := s.l2.(fencer)
	if !ok {
		if len(tags) > 0 {
			if err := s.TagKeys(ctx, writeKey, tags, ttl); err != nil && !errors.Is(err, ErrUnsupported) {
				return false, err
			}
		}
		return true, s.SetEx(ctx, writeKey, value, ttl)
	}
	gen := s.generation(writeKey)
	stored, err := f.SetFenced(ctx, key, ticket, writeKey, value, ttl, tags)
	switch {
	case stored:
		s.wroteAt(ctx, writeKey, value, gen)
	case err != nil:
		_ = s.dropL1(ctx, writeKey)
	}
	return stored, err
}

// Invalidate deletes key from both tiers, through L2's Invalidate when it has one (which revokes the
// tickets and leases of every replica), from L1 before and after L2 as Delete does.
func (s *Store) Invalidate(ctx context.Context, key string) error {
	f, ok := s.l2.(fencer)
	if !ok {
		return s.Delete(ctx, key)
	}
	err := errors.Join(s.dropL1(ctx, key), f.Invalidate(ctx, key))
	return errors.Join(err, s.dropL1(ctx, key))
}

// TagInvalidations passes on L2's announcements of purged tags; without them fn is never called.
func (s *Store) TagInvalidations(fn func(tag string)) (stop func()) {
	if t, ok := s.l2.(interface {
		TagInvalidations(fn func(tag string)) (stop func())
	}); ok {
		return t.TagInvalidations(fn)
	}
	return func() {}
}
