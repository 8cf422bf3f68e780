package sqlstore

import (
	"context"
	"math/rand/v2"
	"time"
)

// Lease outcomes, as the root package's LeaseStore names them; OutcomeGone is what WaitRelease returns
// for a lease that disappeared without a notice (it expired).
const (
	OutcomeMiss = "miss"
	OutcomeGone = "gone"
)

// TryLease takes key's lease for lease with a fresh token unless another holder's lease is live; held
// reports whether this caller got it. The token is a ticket for SetFenced while the lease is held.
func (s *Store) TryLease(ctx context.Context, key string, lease time.Duration) (string, bool, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	clock, err := s.readClock(ctx, s.db)
	if err != nil {
		return "", false, s.opError(ctx, "trylease", err)
	}
	id := rand.Int64()
	now := s.now()
	held, err := s.d.TryLease(ctx, s.db, s.cfg.Prefix, keyBytes(key), id, expiry(now, lease), now)
	if err != nil {
		return "", false, s.opError(ctx, "trylease", err)
	}
	if held {
		s.wrote(1)
	}
	return formatTicket(leaseKind, clock, id), held, nil
}

// Release gives up key's lease if token holds it and announces outcome to the waiters, in one
// transaction. A lease that expired or was taken over is left alone and nothing is announced.
func (s *Store) Release(ctx context.Context, key, token, outcome string) error {
	kind, _, id, ok := parseTicket(token)
	if !ok || kind != leaseKind {
		return nil // no Store handed out this token, so it holds nothing
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	msgs := []Message{{Kind: KindRelease, Key: key, Outcome: outcome}}
	released := false
	err := s.tx(ctx, func(q Querier) error {
		n, err := q.Exec(ctx, s.q.release, keyBytes(key), id)
		if err != nil || n == 0 {
			return err
		}
		released = true
		return s.announce(ctx, q, msgs)
	})
	if err != nil {
		return s.opError(ctx, "release", err)
	}
	if released {
		s.delivered(msgs)
	}
	return nil
}

// WaitRelease blocks until key's lease is released (returning the outcome its holder announced), or is
// gone (OutcomeGone: no lease, or it expired), or ctx ends. A waiter is woken by the announcement, by
// the lease's expiry (a timer set to it, not a poll) and when the announcements may have been missed
// (the listener reconnected), after which it reads the lease again.
func (s *Store) WaitRelease(ctx context.Context, key string) (string, error) {
	ch, stop := s.ev.wait(key)
	defer stop()
	if err := s.listen(ctx); err != nil {
		return "", err
	}
	kb := keyBytes(key)
	for {
		gen := s.ev.generation()
		var exp int64
		cctx, cancel := s.bound(ctx)
		found, err := queryRow(cctx, s.db, s.q.leaseExp, []any{kb}, &exp)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			return "", s.opError(cctx, "waitrelease", err)
		}
		now := s.now()
		if !found || exp <= now {
			select {
			case o := <-ch: // the notice may have come meanwhile; what the holder said wins
				return o, nil
			default:
				return OutcomeGone, nil
			}
		}
		t := time.NewTimer(time.Duration(exp-now+1) * time.Millisecond)
		select {
		case o := <-ch:
			t.Stop()
			return o, nil
		case <-ctx.Done():
			t.Stop()
			return "", ctx.Err()
		case <-gen:
			t.Stop()
		case <-t.C:
		}
	}
}
