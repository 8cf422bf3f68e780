//go:build unix

package redistest

import "syscall"

// The signals behind Freeze and Thaw.
const (
	sigStop = syscall.SIGSTOP
	sigCont = syscall.SIGCONT
)
