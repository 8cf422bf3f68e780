package sqlstore

import (
	"context"
	"time"
)

// The sweeper keeps the tables bounded: it deletes expired rows in batches of sweepBatch (each batch
// its own short statement, so no lock is held for long), evicts the entries that expire first while
// the entries table is above its bounds, and keeps the other tables within auxFactor times the row
// bound. It runs every SweepEvery, and early when this process wrote a sixteenth of the row bound
// since the last sweep, so that a flood of writes overshoots the bound by little.

const (
	sweepBatch = 1000
	// maxBatches bounds one sweep's work per table, so that a sweep of a huge backlog yields to the
	// next tick instead of running for minutes.
	maxBatches = 200
	// auxFactor bounds the tickets, leases, members and tags tables at this many times MaxRows.
	auxFactor = 4
)

// Len returns the number of entry rows as of the last sweep, expired ones not yet removed included.
func (s *Store) Len() int { return int(s.rows.Load()) }

// Bytes returns the entries' charges (len(key) + len(value) + RowOverhead each) as of the last sweep.
func (s *Store) Bytes() int64 { return s.bytes.Load() }

// Evictions returns how many entries this process's sweeps removed to keep within the bounds, and the
// writes it dropped while the table was more than twice its bound.
func (s *Store) Evictions() uint64 { return s.evictions.Load() + s.dropped.Load() }

// full reports whether the entries table was more than twice its bound at the last count: the sweep is
// not keeping up with the writes (a flood of one-off keys), and SetEx drops writes until it does.
func (s *Store) full() bool {
	return s.rows.Load() > 2*s.cfg.MaxRows || s.bytes.Load() > 2*s.cfg.MaxBytes
}

// wrote counts n rows written and asks for an early sweep once they reach a sixteenth of the bound.
func (s *Store) wrote(n int) {
	if s.writes.Add(int64(n)) >= max(s.cfg.MaxRows/16, 64) {
		s.writes.Store(0)
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

func (s *Store) sweeper() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.SweepEvery)
	defer t.Stop()
	for {
		select {
		case <-s.bgCtx.Done():
			return
		case <-t.C:
		case <-s.kick:
		}
		_ = s.Sweep(s.bgCtx)
	}
}

// sweepTimeout bounds each statement of a sweep: longer than a call's timeout, since a sweep's
// statements touch up to sweepBatch rows.
func (s *Store) sweepTimeout() time.Duration { return max(4*s.cfg.Timeout, 2*time.Second) }

// Sweep removes expired rows and evicts entries above the bounds once, now; the store does it by
// itself in the background. It returns the first error, after trying every table.
func (s *Store) Sweep(ctx context.Context) error {
	s.sweepMu.Lock() // one sweep at a time in this process: two would both evict what one needs to
	defer s.sweepMu.Unlock()
	now := s.now()
	var first error
	keep := func(err error) {
		if first == nil && err != nil {
			first = err
		}
	}
	members := "NOT EXISTS (SELECT 1 FROM {p}members m WHERE m.tag = {p}tags.tag)"
	steps := []struct {
		table, where string
		args         []any
	}{
		{"{p}entries", "exp <= ?", []any{now}},
		{"{p}tickets", "exp <= ?", []any{now}},
		{"{p}leases", "exp <= ?", []any{now}},
		{"{p}members", "exp <= ?", []any{now}},
		{"{p}tags", "exp <= ? AND " + members, []any{now}},
	}
	if s.d.Notify == nil {
		steps = append(steps, struct {
			table, where string
			args         []any
		}{"{p}events", "at <= ?", []any{now - s.cfg.EventsKept.Milliseconds()}})
	}
	for _, st := range steps {
		keep(s.deleteBatches(ctx, s.sql(s.d.DeleteLimit(st.table, st.where, sweepBatch)), st.args))
	}
	keep(s.evict(ctx))
	for _, table := range []string{"tickets", "leases"} {
		keep(s.boundTable(ctx, s.cfg.Prefix+table, "exp", auxFactor*s.cfg.MaxRows))
	}
	if s.d.Notify == nil {
		// A flood of deletions within EventsKept: the oldest announcements go first, which only leaves
		// another process's memory tier with a copy until its own TTL cap.
		keep(s.boundTable(ctx, s.cfg.Prefix+"events", "at", auxFactor*s.cfg.MaxRows))
	}
	keep(s.boundMembers(ctx, auxFactor*s.cfg.MaxRows))
	return first
}

// deleteBatches runs a DELETE of at most sweepBatch rows until it deletes fewer, maxBatches at most.
func (s *Store) deleteBatches(ctx context.Context, stmt string, args []any) error {
	for range maxBatches {
		cctx, cancel := context.WithTimeout(ctx, s.sweepTimeout())
		n, err := s.db.Exec(cctx, stmt, args...)
		cancel()
		if err != nil {
			return err
		}
		if n < sweepBatch {
			return nil
		}
	}
	return nil
}

// evict keeps the entries within their bounds: while the table holds more rows or bytes than allowed,
// it deletes the entries that expire first (and their tag members), down to 15/16 of the bound, so that
// a table at its bound is not swept on every write. It counts again before each round of up to
// evictBatch rows: sweeps of several processes (or an explicit Sweep beside the background one) may
// run at once, and each then evicts at most one round more than needed.
func (s *Store) evict(ctx context.Context) error {
	targetRows, targetBytes := s.cfg.MaxRows-s.cfg.MaxRows/16, s.cfg.MaxBytes-s.cfg.MaxBytes/16
	for round := 0; round < maxBatches; round++ {
		cctx, cancel := context.WithTimeout(ctx, s.sweepTimeout())
		var rows, bytes int64
		_, err := queryRow(cctx, s.db, s.q.countEntries, nil, &rows, &bytes)
		cancel()
		if err != nil {
			return err
		}
		s.rows.Store(rows)
		s.bytes.Store(bytes)
		if round == 0 && rows <= s.cfg.MaxRows && bytes <= s.cfg.MaxBytes || rows <= targetRows && bytes <= targetBytes {
			return nil
		}
		n := max(rows-targetRows, 0)
		if over := bytes - targetBytes; over > 0 && rows > 0 {
			n = max(n, over/max(bytes/rows, 1)+1)
		}
		cctx, cancel = context.WithTimeout(ctx, s.sweepTimeout())
		victims, err := s.candidates(cctx, min(n, evictBatch))
		if err == nil && len(victims) > 0 {
			var evicted int64
			cond, args := s.in("k", victims, nil)
			evicted, err = s.db.Exec(cctx, s.sql("DELETE FROM {p}entries WHERE "+cond), args...)
			if err == nil {
				_, err = s.db.Exec(cctx, s.sql("DELETE FROM {p}members WHERE "+cond), args...)
			}
			s.evictions.Add(uint64(evicted))
		}
		cancel()
		if err != nil || len(victims) == 0 {
			return err
		}
	}
	return nil
}

// evictBatch is the most entries one eviction round deletes.
const evictBatch = 5000

// candidates returns the n entries that expire first.
func (s *Store) candidates(ctx context.Context, n int64) ([][]byte, error) {
	rs, err := s.db.Query(ctx, s.q.evictionCandidates, n)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var keys [][]byte
	for rs.Next() {
		var k []byte
		if err := rs.Scan(&k); err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, rs.Err()
}

// boundTable deletes the rows of table that expire first (the smallest col) while it holds more than limit rows. For the
// tickets and leases that revokes them early, which only ever refuses a write or lets a second replica
// run a handler.
//
// The tags table is not bounded this way: a row with a live purge mark fences writes, and forgetting it
// early could let a write from before the purge through. Its rows go when their mark expired (the
// longest ticket or lease live at the purge) and no member is left, and members are bounded below.
func (s *Store) boundTable(ctx context.Context, table, col string, limit int64) error {
	cctx, cancel := context.WithTimeout(ctx, s.sweepTimeout())
	defer cancel()
	var n int64
	if _, err := queryRow(cctx, s.db, "SELECT COUNT(*) FROM "+table, nil, &n); err != nil {
		return err
	}
	if n <= limit {
		return nil
	}
	cutoff := s.now()
	var exp int64
	// The exp below which the excess rows lie: the (n-limit)th smallest.
	found, err := queryRow(cctx, s.db, "SELECT "+col+" FROM "+table+" ORDER BY "+col+" LIMIT 1 OFFSET ?", []any{n - limit}, &exp)
	if err != nil {
		return err
	}
	if found {
		cutoff = exp
	}
	return s.deleteBatches(ctx, s.d.DeleteLimit(table, col+" <= ?", sweepBatch), []any{cutoff})
}

// boundMembers keeps the members table within limit rows: while it holds more, the keys whose
// membership expires first are evicted, entry and memberships together, so that no entry outlives the
// record a purge needs to find it.
func (s *Store) boundMembers(ctx context.Context, limit int64) error {
	cctx, cancel := context.WithTimeout(ctx, s.sweepTimeout())
	var n int64
	_, err := queryRow(cctx, s.db, s.sql("SELECT COUNT(*) FROM {p}members"), nil, &n)
	cancel()
	if err != nil {
		return err
	}
	for i := 0; n > limit && i < maxBatches; i++ {
		cctx, cancel := context.WithTimeout(ctx, s.sweepTimeout())
		keys, err := s.firstMembers(cctx, min(n-limit, 500))
		if err == nil && len(keys) > 0 {
			cond, args := s.in("k", keys, nil)
			var evicted, dropped int64
			evicted, err = s.db.Exec(cctx, s.sql("DELETE FROM {p}entries WHERE "+cond), args...)
			if err == nil {
				dropped, err = s.db.Exec(cctx, s.sql("DELETE FROM {p}members WHERE "+cond), args...)
			}
			s.evictions.Add(uint64(evicted))
			n -= dropped
		}
		cancel()
		if err != nil || len(keys) == 0 {
			return err
		}
	}
	return nil
}

func (s *Store) firstMembers(ctx context.Context, n int64) ([][]byte, error) {
	rs, err := s.db.Query(ctx, s.sql("SELECT k FROM {p}members ORDER BY exp LIMIT ?"), n)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var keys [][]byte
	for rs.Next() {
		var k []byte
		if err := rs.Scan(&k); err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, rs.Err()
}
