//go:build !unix

package trace

import "time"

// cpuTime is unknown here: the CPU column of the report reads 0.
func cpuTime() time.Duration { return 0 }
