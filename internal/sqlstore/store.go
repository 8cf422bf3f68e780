package sqlstore

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Store is the engine of a SQL store. It is safe for concurrent use. Its methods are those of the
// store contracts in the root package's store.go; each is bounded by Config.Timeout.
type Store struct {
	db     DB
	d      Dialect
	cfg    Config
	name   string // the store's name in errors ("pgstore")
	origin int64  // this Store's id in the events table, so its poller skips its own announcements
	q      queries

	ev events

	// Size, as of the last sweep, and what the sweeps evicted (this process's).
	rows, bytes atomic.Int64
	evictions   atomic.Uint64
	dropped     atomic.Uint64 // writes dropped while the table was full (see full)
	sweepMu     sync.Mutex    // serialises this process's sweeps

	sets chan *setReq // queued SetEx calls (see batch.go)

	writes atomic.Int64  // rows written since the last sweep was started early
	kick   chan struct{} // asks the sweeper for an early sweep; room for one

	mu      sync.Mutex // guards closed, started and the background goroutines' lifecycle
	closed  bool
	started bool
	stop    context.CancelFunc // ends the background goroutines
	wg      sync.WaitGroup
	bgCtx   context.Context
}

// New returns a Store over db, named name in its errors ("pgstore"), with the SQL of d. It validates
// cfg; it touches no table (see [Store.Migrate]) and starts the background sweeper.
func New(db DB, d Dialect, name string, cfg Config) (*Store, error) {
	if err := cfg.fill(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	s := &Store{db: db, d: d, cfg: cfg, name: name, origin: rand.Int64(), kick: make(chan struct{}, 1)}
	s.q = buildQueries(s)
	s.ev.init()
	s.bgCtx, s.stop = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.sweeper()
	s.startFlushers(cmp.Or(d.Writers, 4))
	return s, nil
}

// Migrate creates the store's tables and indexes where they do not exist yet. It is idempotent, so
// every replica may call it at start-up; it is not bounded by the store's timeout, only by ctx.
func (s *Store) Migrate(ctx context.Context) error {
	err := s.db.Tx(ctx, func(q Querier) error {
		if s.d.MigrateLock != "" {
			if _, err := q.Exec(ctx, s.sql(s.d.MigrateLock)); err != nil {
				return err
			}
		}
		for _, stmt := range s.d.Schema {
			if _, err := q.Exec(ctx, s.sql(stmt)); err != nil {
				return fmt.Errorf("%s: %w", strings.TrimSpace(stmt), err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: migrate: %w", s.name, err)
	}
	return nil
}

// DropTables drops the store's tables (for tests, and to remove a cache for good).
func (s *Store) DropTables(ctx context.Context) error {
	for _, t := range s.Tables() {
		if _, err := s.db.Exec(ctx, "DROP TABLE IF EXISTS "+t); err != nil {
			return fmt.Errorf("%s: drop %s: %w", s.name, t, err)
		}
	}
	return nil
}

// Prefix returns the table prefix.
func (s *Store) Prefix() string { return s.cfg.Prefix }

// Tables returns the names of the store's tables, for tests and clean-up.
func (s *Store) Tables() []string {
	names := []string{"entries", "tickets", "leases", "tags", "members", "clock"}
	if s.d.Notify == nil {
		names = append(names, "events")
	}
	for i, n := range names {
		names[i] = s.cfg.Prefix + n
	}
	return names
}

// CallTimeout returns the bound the store puts on each call.
func (s *Store) CallTimeout() time.Duration { return s.cfg.Timeout }

// keyBytes is how a key or a tag is stored: as it is when short, else a NUL byte and its SHA-256 (so a
// stored form starting with NUL is always a digest, and any key fits an index).
func keyBytes(k string) []byte {
	if len(k) <= MaxKeyBytes && (k == "" || k[0] != 0) {
		return []byte(k)
	}
	sum := sha256.Sum256([]byte(k))
	return append([]byte{0}, sum[:]...)
}

func (s *Store) now() int64 { return s.cfg.Now().UnixMilli() }

// expiry returns now+ttl in milliseconds, at least one millisecond after now.
func expiry(now int64, ttl time.Duration) int64 { return now + max(ttl.Milliseconds(), 1) }

// bound returns ctx limited to the store's timeout; a caller deadline that comes first is kept.
func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= s.cfg.Timeout {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.cfg.Timeout)
}

// opError wraps err from operation op, adding ErrTimeout when time ran out.
func (s *Store) opError(ctx context.Context, op string, err error) error {
	var ne net.Error
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Errorf("%s: %s: %w: %w", s.name, op, ErrTimeout, err)
	}
	return fmt.Errorf("%s: %s: %w", s.name, op, err)
}

// tx runs fn in a transaction, once more when the database aborted it as a deadlock victim.
func (s *Store) tx(ctx context.Context, fn func(Querier) error) error {
	err := s.db.Tx(ctx, fn)
	if err != nil && s.d.Retryable != nil && s.d.Retryable(err) && ctx.Err() == nil {
		err = s.db.Tx(ctx, fn)
	}
	return err
}

// Get returns the value stored under key. A missing or expired key, or a value larger than
// Config.MaxValueBytes (the database does not send it), is (nil, false, nil).
func (s *Store) Get(ctx context.Context, key string) ([]byte, bool, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var v []byte
	found, err := queryRow(ctx, s.db, s.q.get, []any{keyBytes(key), s.now(), s.cfg.MaxValueBytes}, &v)
	if err != nil {
		return nil, false, s.opError(ctx, "get", err)
	}
	if !found {
		return nil, false, nil
	}
	if v == nil {
		v = []byte{}
	}
	return v, true, nil
}

// BatchGet returns the values of keys in one query (values[i] is keys[i]'s, nil when missing).
func (s *Store) BatchGet(ctx context.Context, keys []string) ([][]byte, error) {
	values := make([][]byte, len(keys))
	if len(keys) == 0 {
		return values, nil
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	at := make(map[string][]int, len(keys))
	uniq := make([][]byte, 0, len(keys))
	for i, k := range keys {
		kb := keyBytes(k)
		if _, ok := at[string(kb)]; !ok {
			uniq = append(uniq, kb)
		}
		at[string(kb)] = append(at[string(kb)], i)
	}
	now := s.now()
	for len(uniq) > 0 {
		chunk := uniq[:min(len(uniq), s.q.chunk)]
		uniq = uniq[len(chunk):]
		cond, args := s.in("k", chunk, nil)
		rows, err := s.db.Query(ctx, s.sql("SELECT k, v FROM {p}entries WHERE "+cond+" AND exp > ? AND LENGTH(v) <= ?"),
			append(args, now, s.cfg.MaxValueBytes)...)
		if err != nil {
			return values, s.opError(ctx, "batchget", err)
		}
		for rows.Next() {
			var k, v []byte
			if err := rows.Scan(&k, &v); err != nil {
				rows.Close()
				return values, s.opError(ctx, "batchget", err)
			}
			if v == nil {
				v = []byte{}
			}
			for _, i := range at[string(k)] {
				values[i] = v
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return values, s.opError(ctx, "batchget", err)
		}
	}
	return values, nil
}

// SetEx stores value under key for ttl. A value larger than Config.MaxValueBytes is not stored (and
// any earlier value of key is removed), which is not an error: a response too large to cache is no
// failure of the store. Nor is a write dropped while the entries table is more than twice its bound
// (the sweep not keeping up with a flood of writes). A ttl that is not above zero is an error.
func (s *Store) SetEx(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("%s: setex: ttl %v is not above zero", s.name, ttl)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	kb := keyBytes(key)
	var err error
	switch {
	case len(value) > s.cfg.MaxValueBytes:
		_, err = s.db.Exec(ctx, s.q.delEntry, kb)
	case s.full():
		s.dropped.Add(1)
		return nil
	default:
		err = s.queueSet(ctx, &setReq{k: kb, v: nonNil(value), exp: expiry(s.now(), ttl), sz: int64(len(kb) + len(value) + RowOverhead)})
	}
	if err != nil {
		return s.opError(ctx, "setex", err)
	}
	return nil
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// Delete is Invalidate: it deletes key, revokes its tickets and lease, and announces the deletion.
func (s *Store) Delete(ctx context.Context, key string) error {
	return s.invalidate(ctx, key, "delete")
}

// Invalidate deletes key, revokes every ticket and the lease of key (waking the lease's waiters with
// "miss") and announces the deletion, in one transaction: it returns nil once that committed.
//
// The tickets and the lease go first: a fenced write holding a share lock on its ticket (or lease)
// makes this transaction wait until the write commits, and the entry is deleted after it, so the
// written value goes too; a fenced write that comes later finds its ticket gone.
func (s *Store) Invalidate(ctx context.Context, key string) error {
	return s.invalidate(ctx, key, "invalidate")
}

func (s *Store) invalidate(ctx context.Context, key, op string) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	kb := keyBytes(key)
	var msgs []Message
	err := s.tx(ctx, func(q Querier) error {
		msgs = msgs[:0]
		if _, err := q.Exec(ctx, s.q.delTickets, kb); err != nil {
			return err
		}
		n, err := q.Exec(ctx, s.q.delLease, kb)
		if err != nil {
			return err
		}
		if n > 0 {
			msgs = append(msgs, Message{Kind: KindRelease, Key: key, Outcome: "miss"})
		}
		if _, err := q.Exec(ctx, s.q.delEntry, kb); err != nil {
			return err
		}
		msgs = append(msgs, Message{Kind: KindKey, Key: key})
		return s.announce(ctx, q, msgs)
	})
	if err != nil {
		return s.opError(ctx, op, err)
	}
	s.delivered(msgs)
	return nil
}
