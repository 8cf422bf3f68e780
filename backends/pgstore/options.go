package pgstore

import (
	"time"

	"github.com/seed-a1426414/stampede/internal/sqlstore"
)

// Defaults of the options.
const (
	DefaultTablePrefix   = sqlstore.DefaultPrefix
	DefaultTimeout       = sqlstore.DefaultTimeout
	DefaultMaxRows       = sqlstore.DefaultMaxRows
	DefaultMaxBytes      = sqlstore.DefaultMaxBytes
	DefaultMaxValueBytes = sqlstore.DefaultMaxValueBytes
	DefaultSweepInterval = sqlstore.DefaultSweepEvery
)

// Option configures a Store; pass options to New.
type Option func(*config)

type config struct {
	sqlstore.Config
	unlogged bool
}

// WithTablePrefix names the store's tables prefix+"entries", prefix+"tickets" and so on (default
// "stampede_", also for ""), so that several caches share a database. The prefix must be a lower-case
// identifier of at most 40 characters (letters, digits, underscores, not starting with a digit); New
// returns ErrInvalidPrefix otherwise. It also names the NOTIFY channel (prefix+"events").
func WithTablePrefix(prefix string) Option { return func(c *config) { c.Prefix = prefix } }

// WithTimeout bounds every call (default 500 ms, also for zero), whether or not the caller's context
// has a deadline; an earlier caller deadline still wins. A call that runs out of time returns an error
// wrapping ErrTimeout, and its connection is closed by pgx. A negative d makes New fail.
func WithTimeout(d time.Duration) Option { return func(c *config) { c.Timeout = d } }

// WithMaxRows bounds the entries table (default 100,000 rows, also for zero): the background sweep
// evicts the entries that expire first while there are more. The tickets, leases and tag members are
// each kept within four times this. A negative n makes New fail.
func WithMaxRows(n int64) Option { return func(c *config) { c.MaxRows = n } }

// WithMaxBytes bounds the entries' charges, len(key) + len(value) + RowOverhead each (default 1 GiB,
// also for zero), as WithMaxRows bounds their number. A negative n makes New fail.
func WithMaxBytes(n int64) Option { return func(c *config) { c.MaxBytes = n } }

// WithMaxValueBytes is the largest value stored or read (default 16 MiB, also for zero): a larger
// value is not written, and a larger row (written by something else) is a miss that the database does
// not even send. A negative n makes New fail.
func WithMaxValueBytes(n int) Option { return func(c *config) { c.MaxValueBytes = n } }

// WithSweepInterval sets the pause between background sweeps (default 1 s, also for zero); a process
// that wrote a sixteenth of WithMaxRows since the last sweep sweeps early. A negative d makes New fail.
func WithSweepInterval(d time.Duration) Option { return func(c *config) { c.SweepEvery = d } }

// WithUnlogged makes Migrate create the entries, tickets, leases and members tables UNLOGGED (default
// off): writes skip the write-ahead log, which makes them markedly cheaper, but PostgreSQL empties
// these tables after a crash (not after a clean restart) and does not replicate them to standbys. For a
// cache that is usually the right trade; the tags and clock tables stay logged either way. It only
// affects tables Migrate creates: it does not convert existing ones.
func WithUnlogged(on bool) Option { return func(c *config) { c.unlogged = on } }
