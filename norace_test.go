//go:build !race

package stampede_test

const raceEnabled = false
