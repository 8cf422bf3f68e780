// Package linearizable checks that stampede's invalidations are linearizable with the reads and the
// flights of their key (docs/behaviour.md §11), by model checking: random concurrent histories of
// reads, loads, invalidations, sets and refreshes (function API) and of GETs, purges, tag purges and
// unsafe requests with and without Vary (middleware), with a random delay injected around every store
// call, are recorded and each is checked against a sequential model of the cache with porcupine, a
// linearizability checker.
//
// `make test` runs a few hundred histories per store kind; `make check-linearizable` runs 10,000 (set
// LINEARIZABLE_HISTORIES to change it). Every run prints its seed; LINEARIZABLE_SEED replays one. A
// history that fails is minimised and written to the test's output, to be kept under testdata/ as a
// regression case.
//
// It is a module of its own so that the checker's dependency never reaches the root module's graph.
package linearizable
