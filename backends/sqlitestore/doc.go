// Package sqlitestore is a stampede store that keeps cached responses and values in a SQLite file,
// through the pure-Go driver modernc.org/sqlite (no cgo): a cache that survives a restart of the
// process, for one machine (several processes may open the same file). Put a memory tier in front of
// it (backends/tieredstore) for in-process hits.
//
// It is a module of its own, so that the driver is not a dependency of stampede's root module.
//
// # Set-up
//
//	store, err := sqlitestore.Open("/var/cache/myapp/stampede.db")
//	defer store.Close()
//	mem, _ := memstore.New(64 << 20)
//	cache := stampede.New(logger, tieredstore.New(mem, store), time.Minute)
//
// Open creates the file and the tables of schema.sql (this package) where missing. The database runs
// in WAL mode (readers beside the one writer) with synchronous=NORMAL (a crash of the machine may lose
// the last writes, never corrupt the file); every transaction takes the write lock when it begins
// (BEGIN IMMEDIATE), and the Store writes through one connection, so that writers queue in order.
//
// # Bounds and fail-open
//
// As in backends/pgstore: a background sweep deletes expired rows in batches and evicts the entries
// that expire first above [WithMaxRows] rows or [WithMaxBytes] bytes; the other tables are kept within
// four times the row bound. Every call is bounded by [WithTimeout] (default 500 ms), which is also
// SQLite's busy timeout; a call that runs out of time returns an error wrapping [ErrTimeout] and counts
// as a miss. The file does not shrink by itself when rows are deleted (SQLite reuses the pages).
//
// # Several processes
//
// Processes that open the same file share the cache. Fencing and leases hold between them (every write
// transaction is serialised by SQLite's lock). Announcements are rows of an events table that each
// Store polls every [WithPollInterval] (default 250 ms); within one Store they are delivered at once.
package sqlitestore
