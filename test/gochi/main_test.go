// Package stampede_test holds go-chi/stampede's own function-API tests (stampede_test.go, verbatim but
// for the import path) run against this module. It is a module of its own so that goware/cachestore2,
// which only these tests need, never becomes a requirement of the library's go.mod.
package stampede_test

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
