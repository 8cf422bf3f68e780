package sqlitestore

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
	DefaultPollInterval  = sqlstore.DefaultPollEvery
)

// Option configures a Store; pass options to New.
type Option func(*config)

type config struct {
	sqlstore.Config
}

// WithTablePrefix names the store's tables prefix+"entries", prefix+"tickets" and so on (default
// "stampede_", also for ""), so that several caches share a database. The prefix must be a lower-case
// identifier of at most 40 characters (letters, digits, underscores, not starting with a digit); New
// returns ErrInvalidPrefix otherwise. It also names the NOTIFY channel (prefix+"events").
func WithTablePrefix(prefix string) Option { return func(c *config) { c.Prefix = prefix } }

// WithTimeout bounds every call (default 500 ms, also for zero), whether or not the caller's context
// has a deadline; an earlier caller deadline still wins. A call that runs out of time returns an error
// wrapping ErrTimeout. It is also SQLite's busy timeout: how long a writer waits for the lock. A negative d
// makes Open fail.
func WithTimeout(d time.Duration) Option { return func(c *config) { c.Timeout = d } }

// WithMaxRows bounds the entries table (default 100,000 rows, also for zero): the background sweep
// evicts the entries that expire first while there are more. The tickets, leases and tag members are
// each kept within four times this. A negative n makes Open fail.
func WithMaxRows(n int64) Option { return func(c *config) { c.MaxRows = n } }

// WithMaxBytes bounds the entries' charges, len(key) + len(value) + RowOverhead each (default 1 GiB,
// also for zero), as WithMaxRows bounds their number. A negative n makes Open fail.
func WithMaxBytes(n int64) Option { return func(c *config) { c.MaxBytes = n } }

// WithMaxValueBytes is the largest value stored or read (default 16 MiB, also for zero): a larger
// value is not written, and a larger row (written by something else) is a miss that the database does
// not even send. A negative n makes Open fail.
func WithMaxValueBytes(n int) Option { return func(c *config) { c.MaxValueBytes = n } }

// WithSweepInterval sets the pause between background sweeps (default 1 s, also for zero); a process
// that wrote a sixteenth of WithMaxRows since the last sweep sweeps early. A negative d makes Open fail.
func WithSweepInterval(d time.Duration) Option { return func(c *config) { c.SweepEvery = d } }

// WithPollInterval sets how often a Store reads the events table for the announcements of other
// processes on the same file (default 250 ms, also for zero): deletions, purged tags and released
// leases made through another process reach this one within about that. Announcements made through
// this Store reach its own subscribers and waiters at once. A negative d makes Open fail.
func WithPollInterval(d time.Duration) Option { return func(c *config) { c.PollEvery = d } }
