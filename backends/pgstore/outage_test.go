package pgstore_test

import (
	"testing"
	"time"

	"github.com/seed-a1426414/stampede/backends/pgstore"
	"github.com/seed-a1426414/stampede/internal/sqltest"
	"github.com/seed-a1426414/stampede/internal/storetest"
)

// TestOutage pauses (SIGSTOP) and kills a PostgreSQL of its own under a store with a 200 ms timeout:
// every call returns an error (a timeout while paused) instead of hanging, the middleware serves
// every request from its handler, and the store works again once the server is back.
func TestOutage(t *testing.T) {
	t.Parallel()
	srv := sqltest.StartPostgres(t)
	s := newStore(t, newPool(t, srv.URL()), pgstore.WithTimeout(200*time.Millisecond))
	storetest.RunOutage(t, s, srv, pgstore.ErrTimeout)
}
