package sqlitestore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver, "sqlite"

	"github.com/seed-a1426414/stampede/internal/sqlstore"
)

// Errors, wrapped with the operation and pgx's error; match them with errors.Is.
var (
	// ErrTimeout is wrapped by the error of a call that ran out of time.
	ErrTimeout = sqlstore.ErrTimeout
	// ErrInvalidPrefix is returned by Open for a table prefix that is not a plain identifier.
	ErrInvalidPrefix = sqlstore.ErrInvalidPrefix
	// ErrInvalidOption is returned by Open for an option value that cannot work.
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

// Store keeps stampede's entries in a SQLite file. It is safe for concurrent use; create it with Open
// and release it with Close.
type Store struct {
	s      *sqlstore.Store
	db     *sqlstore.SQLDB
	rw, ro *sql.DB
	path   string
}

// Open opens (creating it if needed) the SQLite database at path, creates the store's tables in it
// where they do not exist, and starts the background sweep. path is a file name: each process that
// opens the same file shares the cache (":memory:" would give each connection a database of its own,
// and is refused). Open returns an error wrapping ErrInvalidPrefix or ErrInvalidOption for a bad
// option, and the driver's error when the file cannot be opened or written.
func Open(path string, opts ...Option) (*Store, error) {
	if path == "" || strings.HasPrefix(path, ":memory:") || strings.Contains(path, "mode=memory") {
		return nil, fmt.Errorf("sqlitestore: Open expects a file name, got %q", path)
	}
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	timeout := cmp.Or(cfg.Timeout, DefaultTimeout)
	if timeout < 0 {
		timeout = DefaultTimeout // sqlstore.New reports the option
	}
	// WAL lets readers run beside the one writer; every transaction takes the write lock at BEGIN
	// (IMMEDIATE), so none is upgraded half-way and fails; a writer waits for the lock up to the
	// store's timeout.
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate" +
		"&_pragma=busy_timeout(" + strconv.FormatInt(timeout.Milliseconds(), 10) + ")"
	rw, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: %w", err)
	}
	// One writing connection: writers queue for it in Go, in order, instead of retrying the lock.
	rw.SetMaxOpenConns(1)
	ro, err := sql.Open("sqlite", dsn)
	if err != nil {
		_ = rw.Close()
		return nil, fmt.Errorf("sqlitestore: %w", err)
	}
	ro.SetMaxOpenConns(8)
	ro.SetMaxIdleConns(8)
	sdb := &sqlstore.SQLDB{Read: ro, Write: rw}
	s, err := sqlstore.New(sdb, dialect(), "sqlitestore", cfg.Config)
	if err != nil {
		_, _ = rw.Close(), ro.Close()
		return nil, err
	}
	st := &Store{s: s, db: sdb, rw: rw, ro: ro, path: path}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Migrate(ctx); err != nil {
		_ = st.Close()
		return nil, err
	}
	return st, nil
}

// Migrate creates the store's tables and indexes (schema.sql in this package) where they do not exist,
// as Open does. It is idempotent; it is bounded by ctx only.
func (s *Store) Migrate(ctx context.Context) error { return s.s.Migrate(ctx) }

// DropTables drops the store's tables: for tests, and to remove a cache for good.
func (s *Store) DropTables(ctx context.Context) error { return s.s.DropTables(ctx) }

// Close stops the background sweep and the events poller, waits for them and closes the database.
func (s *Store) Close() error {
	err := s.s.Close()
	s.db.Close()
	return errors.Join(err, s.rw.Close(), s.ro.Close())
}

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
// announces the deletion (a row of the events table), in one transaction; nil means it committed.
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

// Release gives key's lease up if token holds it and announces outcome to the waiters: at once to
// this Store's, within WithPollInterval to other processes'.
func (s *Store) Release(ctx context.Context, key, token, outcome string) error {
	return s.s.Release(ctx, key, token, outcome)
}

// WaitRelease blocks until key's lease is released (the holder's outcome), gone (OutcomeGone), or ctx
// ends. Waiters are woken by the release (see Release), and by a timer at the lease's expiry.
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
		return fmt.Errorf("sqlitestore: sweep: %w", err)
	}
	return nil
}

// Prefix returns the table prefix (WithTablePrefix).
func (s *Store) Prefix() string { return s.s.Prefix() }

// Path returns the file name given to Open.
func (s *Store) Path() string { return s.path }
