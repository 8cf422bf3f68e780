package memstore_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/seed-a1426414/stampede/backends/memstore"
)

func Example() {
	// A 64 MiB budget: every entry costs its key and value lengths plus memstore.Overhead.
	store, err := memstore.New(64 << 20)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	ctx := context.Background()
	_ = store.SetEx(ctx, "greeting", []byte("hello"), time.Minute)

	v, ok, _ := store.Get(ctx, "greeting")
	fmt.Println(string(v), ok)

	_, ok, _ = store.Get(ctx, "absent")
	fmt.Println(ok)

	// A ttl of zero stores nothing and removes what was there.
	_ = store.SetEx(ctx, "greeting", []byte("bye"), 0)
	_, ok, _ = store.Get(ctx, "greeting")
	fmt.Println(ok)

	_, err = memstore.New(0)
	fmt.Println(err)
	// Output:
	// hello true
	// false
	// false
	// memstore: invalid size: maxBytes 0, must be above 0
}
