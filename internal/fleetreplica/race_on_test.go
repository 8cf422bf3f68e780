//go:build race

package fleetreplica

const raceEnabled = true
