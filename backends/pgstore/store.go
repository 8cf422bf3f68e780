package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seed-a1426414/stampede/internal/sqlstore"
)

// Errors, wrapped with the operation and pgx's error; match them with errors.Is.
var (
	// ErrTimeout is wrapped by the error of a call that ran out of time.
	ErrTimeout = sqlstore.ErrTimeout
	// ErrInvalidPrefix is returned by New for a table prefix that is not a plain identifier.
	ErrInvalidPrefix = sqlstore.ErrInvalidPrefix
	// ErrInvalidOption is returned by New for an option value that cannot work.
	ErrInvalidOption = sqlstore.ErrInvalidConfig
	// ErrInvalidTicket is returned by SetFenced for a ticket that no Store returned.
	ErrInvalidTicket = sqlstore.ErrInvalidTicket
	// ErrClosed is returned by WaitRelease after Close.
	ErrClosed = sqlstore.ErrClosed
)

// Lease outcomes: Release passes any outcome through; these are the ones stampede announces, and
// OutcomeGone is WaitRelease's answer for a lease that expired or never was.
const (
	OutcomeStored = "stored"
	OutcomePass   = "pass"
	OutcomeMiss   = "miss"
	OutcomeGone   = "gone"
)

// Store keeps stampede's entries in PostgreSQL. It is safe for concurrent use; create it with New, its
// tables with Migrate, and stop its background work with Close.
type Store struct {
	s *sqlstore.Store
}

// New returns a Store over pool. It checks the options but touches no table: call Migrate once (each
// replica may) before use. It starts the background sweep; Close stops it. The pool is not closed by
// the Store. New returns an error wrapping ErrInvalidPrefix or ErrInvalidOption for a bad option, and
// one for a nil pool.
func New(pool *pgxpool.Pool, opts ...Option) (*Store, error) {
	if pool == nil {
		return nil, errors.New("pgstore: New expects a non-nil pool")
	}
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	s, err := sqlstore.New(&db{pool: pool}, dialect(pool, cfg.unlogged), "pgstore", cfg.Config)
	if err != nil {
		return nil, err
	}
	return &Store{s: s}, nil
}

// Migrate creates the store's tables and indexes (schema.sql in this package) where they do not exist.
// It is idempotent and safe to run from several replicas at once (an advisory lock orders them); it is
// bounded by ctx only.
func (s *Store) Migrate(ctx context.Context) error { return s.s.Migrate(ctx) }

// DropTables drops the store's tables: for tests, and to remove a cache for good.
func (s *Store) DropTables(ctx context.Context) error { return s.s.DropTables(ctx) }

// Close stops the background sweep and the notification listener, and waits for them. It does not
// close the pool. Other calls keep working afterwards, but WaitRelease returns ErrClosed and the
// subscriptions hear nothing more.
func (s *Store) Close() error { return s.s.Close() }

// Get returns the value stored under key. A missing or expired key is (nil, false, nil).
func (s *Store) Get(ctx context.Context, key string) ([]byte, bool, error) { return s.s.Get(ctx, key) }

// BatchGet returns the values of keys in one query (values[i] is keys[i]'s, nil when missing).
func (s *Store) BatchGet(ctx context.Context, keys []string) ([][]byte, error) {
	return s.s.BatchGet(ctx, keys)
}

// SetEx stores value under key for ttl. A value above WithMaxValueBytes is not stored (nor is an
// earlier value of key kept), which is not an error. A ttl that is not above zero is an error.
func (s *Store) SetEx(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return s.s.SetEx(ctx, key, value, ttl)
}

// Delete is Invalidate: it deletes key, revokes its tickets and lease, and announces it.
func (s *Store) Delete(ctx context.Context, key string) error { return s.s.Delete(ctx, key) }

// Invalidate deletes key, revokes every ticket and the lease of key (its waiters get "miss") and
// announces the deletion with NOTIFY, in one transaction; nil means it committed.
func (s *Store) Invalidate(ctx context.Context, key string) error { return s.s.Invalidate(ctx, key) }

// Ticket registers a writer of key and returns its ticket, valid for ttl unless revoked first.
func (s *Store) Ticket(ctx context.Context, key string, ttl time.Duration) (string, error) {
	return s.s.Ticket(ctx, key, ttl)
}

// SetFenced records writeKey under tags, then stores value under writeKey for ttl unless ticket is no
// longer valid for key or a tag was purged after the ticket was taken, in one transaction; stored
// reports whether it wrote.
func (s *Store) SetFenced(ctx context.Context, key, ticket, writeKey string, value []byte, ttl time.Duration, tags []string) (bool, error) {
	return s.s.SetFenced(ctx, key, ticket, writeKey, value, ttl, tags)
}

// SetExFenced is SetFenced(ctx, key, token, key, value, ttl, nil), the lease-fenced write stampede's
// engine calls until it takes tickets.
func (s *Store) SetExFenced(ctx context.Context, key string, value []byte, ttl time.Duration, token string) (bool, error) {
	return s.s.SetExFenced(ctx, key, value, ttl, token)
}

// TagKeys records that the entry at key carries tags, for at least ttl.
func (s *Store) TagKeys(ctx context.Context, key string, tags []string, ttl time.Duration) error {
	return s.s.TagKeys(ctx, key, tags, ttl)
}

// PurgeTag fences tag (tickets taken before cannot write under it), then deletes every entry recorded
// under it, revoking their tickets and leases, and announces the keys and the tag. It returns how many
// entries it deleted.
func (s *Store) PurgeTag(ctx context.Context, tag string) (int, error) { return s.s.PurgeTag(ctx, tag) }

// Invalidations calls fn with each key deleted through any Store on these tables, on any replica, until
// stop is called. fn runs on the listener's goroutine and must not block.
func (s *Store) Invalidations(fn func(key string)) (stop func()) { return s.s.Invalidations(fn) }

// TagInvalidations calls fn with each tag purged through any Store on these tables until stop is called.
func (s *Store) TagInvalidations(fn func(tag string)) (stop func()) { return s.s.TagInvalidations(fn) }

// TryLease takes key's lease for lease unless another live lease holds it; the token is a ticket for
// SetFenced while held.
func (s *Store) TryLease(ctx context.Context, key string, lease time.Duration) (token string, held bool, err error) {
	return s.s.TryLease(ctx, key, lease)
}

// Release gives key's lease up if token holds it and announces outcome to the waiters (NOTIFY).
func (s *Store) Release(ctx context.Context, key, token, outcome string) error {
	return s.s.Release(ctx, key, token, outcome)
}

// WaitRelease blocks until key's lease is released (the holder's outcome), gone (OutcomeGone), or ctx
// ends. Waiters are woken by NOTIFY, and by a timer at the lease's expiry; they do not poll.
func (s *Store) WaitRelease(ctx context.Context, key string) (string, error) {
	return s.s.WaitRelease(ctx, key)
}

// CallTimeout returns the bound on each call (WithTimeout).
func (s *Store) CallTimeout() time.Duration { return s.s.CallTimeout() }

// Len returns the entries table's rows as of the last sweep (expired rows not yet removed included).
func (s *Store) Len() int { return s.s.Len() }

// Bytes returns the entries' charges as of the last sweep.
func (s *Store) Bytes() int64 { return s.s.Bytes() }

// Evictions returns how many entries this process's sweeps removed to keep within the bounds.
func (s *Store) Evictions() uint64 { return s.s.Evictions() }

// Sweep removes expired rows and evicts above the bounds now, as the background sweep does.
func (s *Store) Sweep(ctx context.Context) error {
	if err := s.s.Sweep(ctx); err != nil {
		return fmt.Errorf("pgstore: sweep: %w", err)
	}
	return nil
}

// Prefix returns the table prefix (WithTablePrefix).
func (s *Store) Prefix() string { return s.s.Prefix() }
