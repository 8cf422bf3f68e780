package failover

import (
	"fmt"
	"log"
	"os"
	"runtime"
	"sync"
)

// harnessTB is internal/redistest's TB for a program: Fatalf ends the calling goroutine (as testing
// does) after recording the failure, cleanups run in reverse order on close, and each TempDir is removed
// then. redistest calls Fatalf only on the goroutine that called it, which here is the scenario's.
type harnessTB struct {
	mu       sync.Mutex
	cleanups []func() // guarded by mu
	failure  string   // guarded by mu; the first Fatalf or Errorf message
	verbose  bool
}

// Helper does nothing: the harness reports no file and line.
func (t *harnessTB) Helper() {}

// Cleanup registers f to run when the scenario is done with.
func (t *harnessTB) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

// TempDir returns a new directory, removed when the scenario is done with.
func (t *harnessTB) TempDir() string {
	dir, err := os.MkdirTemp("", "stampede-failover-")
	if err != nil {
		t.Fatalf("temporary directory: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// Logf logs when the harness is verbose.
func (t *harnessTB) Logf(format string, args ...any) {
	if t.verbose {
		log.Printf(format, args...)
	}
}

// Errorf records a failure and carries on.
func (t *harnessTB) Errorf(format string, args ...any) { t.fail(fmt.Sprintf(format, args...)) }

// Fatalf records a failure and ends the calling goroutine.
func (t *harnessTB) Fatalf(format string, args ...any) {
	t.fail(fmt.Sprintf(format, args...))
	runtime.Goexit()
}

// Skipf is a failure here: a scenario that cannot run says why rather than being left out silently.
func (t *harnessTB) Skipf(format string, args ...any) { t.Fatalf(format, args...) }

func (t *harnessTB) fail(msg string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.failure == "" {
		t.failure = msg
	}
}

// err returns the first failure, or nil.
func (t *harnessTB) err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.failure == "" {
		return nil
	}
	return fmt.Errorf("%s", t.failure)
}

// close runs the cleanups, last registered first.
func (t *harnessTB) close() {
	t.mu.Lock()
	fs := t.cleanups
	t.cleanups = nil
	t.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// runGuarded runs f on a goroutine of its own, so that a Fatalf (runtime.Goexit) inside it ends f and
// not the caller, and returns the failure it recorded, if any.
func runGuarded(t *harnessTB, f func()) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
	return t.err()
}
