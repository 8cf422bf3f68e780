//go:build !unix

package redistest

import "os"

// Freeze and Thaw need SIGSTOP and SIGCONT, which only Unix systems have (as does redis-server): here
// they skip the test.
var sigStop, sigCont os.Signal
