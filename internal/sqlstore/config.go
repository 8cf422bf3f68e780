package sqlstore

import (
	"errors"
	"fmt"
	"time"
)

// Defaults of [Config]; a zero field means its default.
const (
	DefaultPrefix        = "stampede_"
	DefaultTimeout       = 500 * time.Millisecond
	DefaultMaxRows       = 100_000
	DefaultMaxBytes      = 1 << 30
	DefaultMaxValueBytes = 16 << 20
	DefaultSweepEvery    = time.Second
	DefaultPollEvery     = 250 * time.Millisecond
	DefaultEventsKept    = time.Minute
)

// RowOverhead is what each entry row is charged against the byte bound on top of its key and value:
// an estimate of a row's header, its index entries and its other columns.
const RowOverhead = 96

// MaxKeyBytes is the longest key stored as it is; longer keys are stored as their SHA-256.
const MaxKeyBytes = 250

// Errors of the SQL stores, each wrapped with the operation and the driver's error; match them with
// errors.Is.
var (
	// ErrTimeout is wrapped by the error of a call that ran out of time.
	ErrTimeout = errors.New("timeout")
	// ErrInvalidPrefix is returned for a table prefix that is not a plain lower-case identifier.
	ErrInvalidPrefix = errors.New("invalid table prefix")
	// ErrInvalidConfig is returned for an option value that cannot work.
	ErrInvalidConfig = errors.New("invalid option")
	// ErrInvalidTicket is returned by SetFenced for a ticket that no Ticket or TryLease of a SQL store
	// returned.
	ErrInvalidTicket = errors.New("invalid ticket")
	// ErrClosed is returned by calls made after Close.
	ErrClosed = errors.New("store closed")
)

// Config is a store's configuration, filled by the store module's options.
type Config struct {
	Prefix        string        // table prefix; DefaultPrefix when empty
	Timeout       time.Duration // bound on each call; DefaultTimeout when zero
	MaxRows       int64         // bound on the entries table's rows; DefaultMaxRows when zero
	MaxBytes      int64         // bound on the entries' charges; DefaultMaxBytes when zero
	MaxValueBytes int           // largest value stored or returned; DefaultMaxValueBytes when zero
	SweepEvery    time.Duration // pause between background sweeps; DefaultSweepEvery when zero
	PollEvery     time.Duration // pause between polls of the events table; DefaultPollEvery when zero
	EventsKept    time.Duration // how long announcements stay in the events table; DefaultEventsKept when zero
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// fill validates c and replaces its zero fields with their defaults.
func (c *Config) fill() error {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if err := ValidPrefix(c.Prefix); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"timeout", &c.Timeout, DefaultTimeout}, {"sweep interval", &c.SweepEvery, DefaultSweepEvery},
		{"poll interval", &c.PollEvery, DefaultPollEvery}, {"events kept", &c.EventsKept, DefaultEventsKept},
	} {
		switch {
		case *f.v < 0:
			return fmt.Errorf("%w: %s %v is negative", ErrInvalidConfig, f.name, *f.v)
		case *f.v == 0:
			*f.v = f.def
		}
	}
	for _, f := range []struct {
		name string
		v    *int64
		def  int64
	}{{"max rows", &c.MaxRows, DefaultMaxRows}, {"max bytes", &c.MaxBytes, DefaultMaxBytes}} {
		switch {
		case *f.v < 0:
			return fmt.Errorf("%w: %s %d is negative", ErrInvalidConfig, f.name, *f.v)
		case *f.v == 0:
			*f.v = f.def
		}
	}
	switch {
	case c.MaxValueBytes < 0:
		return fmt.Errorf("%w: max value bytes %d is negative", ErrInvalidConfig, c.MaxValueBytes)
	case c.MaxValueBytes == 0:
		c.MaxValueBytes = DefaultMaxValueBytes
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}
