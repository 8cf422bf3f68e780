package redisproc

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes the kernel kill redis-server if the benchmark dies without stopping it.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
