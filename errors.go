package stampede

import "fmt"

// PanicError describes a run that panicked with a value other than http.ErrAbortHandler, for the
// requests (or calls) that waited on it. The request that ran the handler (the call that started the
// load) panics with the original value; its message leaves the stack out, so that a panic is logged
// with its stack once, by whoever recovers the leading request.
type PanicError struct {
	// Value is what the handler (or load) panicked with.
	Value any
	// Stack is the stack of the goroutine that panicked, as debug.Stack printed it.
	Stack []byte
}

// Error implements error.
func (p *PanicError) Error() string {
	return fmt.Sprintf("stampede: coalesced handler panicked: %v", p.Value)
}

// Unwrap returns the panic value when it is an error.
func (p *PanicError) Unwrap() error {
	err, _ := p.Value.(error)
	return err
}
