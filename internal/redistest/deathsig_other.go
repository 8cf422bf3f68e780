//go:build !linux

package redistest

import "os/exec"

// setDeathSignal does nothing where the kernel has no parent-death signal; t.Cleanup still stops the
// server whenever the test binary exits normally.
func setDeathSignal(*exec.Cmd) {}
