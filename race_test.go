//go:build race

package stampede_test

// raceEnabled is true under -race, which slows go-redis enough that 10,000 workers saturate any pool.
const raceEnabled = true
