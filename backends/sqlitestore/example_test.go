package sqlitestore_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
	"github.com/seed-a1426414/stampede/backends/sqlitestore"
	"github.com/seed-a1426414/stampede/backends/tieredstore"
)

// A cache that survives a restart: a Loader whose values are kept in a SQLite file behind a memory
// tier. The second "process" (the same code after Close, as after a restart) finds the value in the
// file and does not load it again.
func Example() {
	dir, err := os.MkdirTemp("", "stampede-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "cache.db")

	loads := 0
	report := func(_ context.Context, month string) (string, error) {
		loads++ // an expensive query
		return "report for " + month, nil
	}
	run := func() {
		file, err := sqlitestore.Open(path)
		if err != nil {
			log.Fatal(err)
		}
		defer file.Close()
		mem, err := memstore.New(16 << 20)
		if err != nil {
			log.Fatal(err)
		}
		defer mem.Close()
		store := tieredstore.New(mem, file) // memory in front of the file
		defer store.Close()
		reports := stampede.NewLoader("reports", report, stampede.WithStore(store), stampede.WithTTL(time.Hour))
		defer reports.Close()
		v, err := reports.Get(context.Background(), "2026-11")
		reports.Wait() // the value is written in the background; wait for it before "exiting"
		fmt.Println(v, err)
	}
	run()
	run() // after a restart
	fmt.Println("loads:", loads)
	// Output:
	// report for 2026-11 <nil>
	// report for 2026-11 <nil>
	// loads: 1
}

// Open with the options that matter most; a bad option is an error, not a panic.
func ExampleOpen() {
	dir, err := os.MkdirTemp("", "stampede-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	store, err := sqlitestore.Open(filepath.Join(dir, "cache.db"),
		sqlitestore.WithMaxRows(50_000),                    // evicts what expires first beyond that
		sqlitestore.WithTimeout(200*time.Millisecond),      // a call that takes longer is a miss
		sqlitestore.WithPollInterval(100*time.Millisecond)) // how soon other processes hear of purges
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	_ = store.SetEx(ctx, "k", []byte("v"), time.Minute)
	v, ok, err := store.Get(ctx, "k")
	fmt.Println(string(v), ok, err)

	_, err = sqlitestore.Open(filepath.Join(dir, "other.db"), sqlitestore.WithTablePrefix("Bad-Prefix"))
	fmt.Println(err)
	// Output:
	// v true <nil>
	// sqlitestore: invalid table prefix: "Bad-Prefix": lower-case letters, digits and underscores, not starting with a digit
}
