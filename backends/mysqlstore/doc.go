// Package mysqlstore is a stampede store that keeps cached responses and values in MySQL (8.0 or
// later) or MariaDB (10.6 or later), through go-sql-driver/mysql and InnoDB tables: every replica of a
// service shares one cache, without Redis. It offers batched reads, fenced writes, a shared tag index,
// fleet coalescing (leases) and announcements of deletions and purged tags.
//
// It is a module of its own, so that the driver is not a dependency of stampede's root module.
//
// # Set-up
//
//	db, err := sql.Open("mysql", "app:secret@tcp(db:3306)/app?timeout=1s&readTimeout=1s&writeTimeout=1s")
//	store, err := mysqlstore.New(db, mysqlstore.WithTablePrefix("myapp_cache_"))
//	err = store.Migrate(ctx) // creates the tables where missing; every replica may run it
//	defer store.Close()      // stops the background sweep and the events poller; the db is yours
//
// The tables are those of schema.sql in this package, named with the prefix. The prefix is checked to
// be a plain lower-case identifier. Transactions run at READ COMMITTED (set per transaction), whatever
// the server's default.
//
// # Bounds and fail-open
//
// As in backends/pgstore: a background sweep deletes expired rows in batches and evicts the entries
// that expire first above [WithMaxRows] rows or [WithMaxBytes] bytes; the other tables, the events
// table included, are kept within four times the row bound. Every call is bounded by [WithTimeout]
// (default 500 ms); the driver closes the connection of a call that runs out of time, and the call
// returns an error wrapping [ErrTimeout]. Put timeout, readTimeout and writeTimeout in the DSN too, so
// that a connection to a dead server is not held for long by the pool.
//
// # Announcements and what holds across processes
//
// MySQL has no LISTEN/NOTIFY. Deletions, purged tags and released leases are rows of the events table,
// written in the transaction that makes them: the Store that made them tells its own subscribers and
// lease waiters at once, and every Store polls the table every [WithPollInterval] (default 250 ms) for
// the others' announcements, re-reading a look-back window of a few seconds so that an announcement
// whose transaction committed late is not skipped. So a purge on one replica clears the memory tiers of
// the others within about the poll interval, and a replica waiting for another's lease is woken within
// it (or at the lease's expiry). Announcements are kept a minute, and at most four times the row bound:
// a replica that cannot poll for longer misses some, and its memory tier keeps those copies until its
// own TTL cap.
//
// Fencing holds across processes as in pgstore: tickets, leases and tag marks are rows, each check and
// the write it guards are one transaction with share locks (LOCK IN SHARE MODE), and Invalidate deletes
// tickets and lease before the entry.
package mysqlstore
