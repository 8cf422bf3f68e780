package trace

import (
	"container/heap"
	"time"
)

// Ideal returns the wall time of a perfect middleware on this trace: one that costs nothing, computes
// each key once, and releases every request waiting on a key the moment it is computed. It is simulated,
// not measured. It is above LowerBound because a worker that asks for a key being computed waits for
// it instead of computing another, and because with more workers than the trace keeps busy a worker's
// requests still take a sleep each, one after another.
func Ideal(keys []string, workers int, sleep time.Duration) time.Duration {
	ready := make(map[string]time.Duration, len(keys)/2) // when each key's value is available
	free := make(freeAt, workers)                        // when each worker takes its next request
	heap.Init(&free)
	var end time.Duration
	for _, k := range keys {
		t := free[0]
		avail, ok := ready[k]
		switch {
		case !ok:
			avail = t + sleep
			ready[k] = avail
		case avail < t:
			avail = t
		}
		free[0] = avail
		heap.Fix(&free, 0)
		end = max(end, avail)
	}
	return end
}

// freeAt is a min-heap of the times workers become free.
type freeAt []time.Duration

func (f freeAt) Len() int           { return len(f) }
func (f freeAt) Less(i, j int) bool { return f[i] < f[j] }
func (f freeAt) Swap(i, j int)      { f[i], f[j] = f[j], f[i] }
func (f *freeAt) Push(x any)        { *f = append(*f, x.(time.Duration)) }
func (f *freeAt) Pop() any {
	old := *f
	x := old[len(old)-1]
	*f = old[:len(old)-1]
	return x
}
