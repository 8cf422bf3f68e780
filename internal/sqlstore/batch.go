package sqlstore

import "context"

// Writes are combined: concurrent SetEx calls queue, and each of a few flushers takes what is queued
// (up to maxBatch rows) and writes it with one multi-row upsert, one statement and one commit. Under a
// burst of misses that turns hundreds of commits (each a log flush in PostgreSQL and InnoDB, each a turn
// of SQLite's single writer) into a few; a write that finds the queue empty is sent at once, so a quiet
// store adds no latency.

const maxBatch = 256

// setReq is one queued SetEx.
type setReq struct {
	k, v    []byte
	exp, sz int64
	done    chan error // buffered: a caller that stopped waiting must not block the flusher
}

func (s *Store) startFlushers(n int) {
	s.sets = make(chan *setReq, 4*maxBatch)
	for range n {
		s.wg.Add(1)
		go s.flusher()
	}
}

func (s *Store) flusher() {
	defer s.wg.Done()
	batch := make([]*setReq, 0, maxBatch)
	for {
		select {
		case <-s.bgCtx.Done():
			return
		case r := <-s.sets:
			batch = append(batch[:0], r)
		}
	more:
		for len(batch) < maxBatch {
			select {
			case r := <-s.sets:
				batch = append(batch, r)
			default:
				break more
			}
		}
		err := s.flush(batch)
		for _, r := range batch {
			r.done <- err
		}
	}
}

// flush writes batch in one statement, the last write of a key winning (PostgreSQL refuses a statement
// that updates a row twice).
func (s *Store) flush(batch []*setReq) error {
	ctx, cancel := context.WithTimeout(s.bgCtx, s.cfg.Timeout)
	defer cancel()
	last := make(map[string]int, len(batch))
	for i, r := range batch {
		last[string(r.k)] = i
	}
	args := make([]any, 0, 4*len(last))
	for i, r := range batch {
		if last[string(r.k)] == i {
			args = append(args, r.k, r.v, r.exp, r.sz)
		}
	}
	rows := len(args) / 4
	q := s.q.setEntry
	if rows > 1 {
		q = s.sql(s.d.Upsert("{p}entries", []string{"k", "v", "exp", "sz"}, []string{"k"}, []string{"v", "exp", "sz"}, nil, rows))
	}
	_, err := s.db.Exec(ctx, q, args...)
	s.wrote(rows)
	return err
}

// queueSet queues one write and waits for its flush, or for ctx. After Close, with no flusher left,
// the write is sent on its own.
func (s *Store) queueSet(ctx context.Context, r *setReq) error {
	if s.bgCtx.Err() != nil {
		_, err := s.db.Exec(ctx, s.q.setEntry, r.k, r.v, r.exp, r.sz)
		return err
	}
	r.done = make(chan error, 1)
	select {
	case s.sets <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.bgCtx.Done():
		return ErrClosed
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-s.bgCtx.Done(): // closed while queued: the write may or may not have been made
		return ErrClosed
	}
}
