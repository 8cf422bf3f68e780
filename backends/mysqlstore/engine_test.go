package mysqlstore_test

import (
	"testing"

	"github.com/seed-a1426414/stampede/internal/storetest"
)

// TestEngine runs the middleware, the function API, tieredstore and fleet coalescing on the store
// (storetest.RunEngine), with the harness of TestContract.
func TestEngine(t *testing.T) {
	t.Parallel()
	storetest.RunEngine(t, harness)
}
