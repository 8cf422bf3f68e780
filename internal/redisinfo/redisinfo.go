// Package redisinfo reads figures out of the replies of Redis's INFO command, for the tests and the
// benchmarks that count what a Redis server was asked to do.
package redisinfo

import (
	"fmt"
	"strconv"
	"strings"
)

// CommandCalls returns how many times the server ran cmd (a command name such as "get" or "mget", any
// case) according to info, a reply of INFO commandstats, whose lines read
// "cmdstat_get:calls=3,usec=12,...": 0 when cmd has no line (it has not run yet).
func CommandCalls(info, cmd string) (int, error) {
	prefix := "cmdstat_" + strings.ToLower(cmd) + ":"
	for line := range strings.SplitSeq(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), prefix)
		if !ok {
			continue
		}
		for field := range strings.SplitSeq(rest, ",") {
			if v, ok := strings.CutPrefix(field, "calls="); ok {
				n, err := strconv.Atoi(v)
				if err != nil {
					return 0, fmt.Errorf("redisinfo: line %q: %v", line, err)
				}
				return n, nil
			}
		}
		return 0, fmt.Errorf("redisinfo: line %q has no calls= field", line)
	}
	return 0, nil
}
