// Package linearizable checks that stampede's invalidations are linearizable with the reads and the
// flights of their key (docs/behaviour.md §11), by model checking: random concurrent histories of
// reads, loads, invalidations, sets and refreshes (function API: Loader, and go-chi's Do and
// Invalidate, which have no sets or refreshes) and of GETs, purges, tag purges and
// unsafe requests with and without Vary (middleware), with a random delay injected around every store
// call, are recorded and each is checked against a sequential model of the cache with porcupine, a
// linearizability checker.
//
// `make test` runs a few hundred histories per store kind; `make check-linearizable` runs 10,000 (set
// LINEARIZABLE_HISTORIES to change it). Every run prints its seed; LINEARIZABLE_SEED replays one (the
// same operations; the interleaving is the scheduler's).
//
// # Failing histories
//
// A history that fails is minimised (operations dropped while what is left still fails) and reported
// with its seed, and kept in a file whose path the report gives: JSON with the seed, the failing key's
// whole history, the minimised one and the store calls, under LINEARIZABLE_KEEP (default: the system's
// temporary directory), with porcupine's visualisation beside it (.html). Copied under testdata/, it is a
// regression test: TestRegressions checks that the model still rejects it and replays its operations
// against its store kind, in the history's real-time order, LINEARIZABLE_HISTORIES times (default 50),
// each replay checked.
//
// It is a module of its own so that the checker's dependency never reaches the root module's graph.
package linearizable
