package redisstore_test

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed-a1426414/stampede/backends/redisstore"
)

// The client settings the package doc recommends: go-redis honours the store's deadline, and its own
// timeouts are near the store's. These examples compile with the package but need a Redis to run.
func ExampleNew() {
	client := redis.NewClient(&redis.Options{
		Addr:                  "localhost:6379",
		ContextTimeoutEnabled: true,
		DialTimeout:           200 * time.Millisecond,
		DialerRetries:         1,
		ReadTimeout:           100 * time.Millisecond,
		WriteTimeout:          100 * time.Millisecond,
		PoolTimeout:           100 * time.Millisecond,
		MaxRetries:            -1,
	})
	defer client.Close()
	store := redisstore.New(client, redisstore.WithKeyPrefix("myapp:"), redisstore.WithCompression(0))

	ctx := context.Background()
	if err := store.SetEx(ctx, "k", []byte("an encoded entry"), time.Minute); err != nil {
		fmt.Println("write skipped:", err) // the middleware treats errors as misses
	}
	value, found, err := store.Get(ctx, "k")
	fmt.Println(len(value), found, err)
}

func ExampleNew_cluster() {
	client := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:                 []string{"node-1:6379", "node-2:6379", "node-3:6379"},
		ContextTimeoutEnabled: true,
		DialTimeout:           200 * time.Millisecond,
		DialerRetries:         1,
		ReadTimeout:           100 * time.Millisecond,
		WriteTimeout:          100 * time.Millisecond,
		PoolTimeout:           100 * time.Millisecond,
		MaxRetries:            -1,
	})
	defer client.Close()
	store := redisstore.New(client)

	// One MGET per hash slot, sent to the nodes in parallel; values[i] is nil where keys[i] is missing.
	values, err := store.BatchGet(context.Background(), []string{"a", "b", "c"})
	fmt.Println(len(values), err)
}

func ExampleNew_sentinel() {
	client := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:            "mymaster",
		SentinelAddrs:         []string{"sentinel-1:26379", "sentinel-2:26379", "sentinel-3:26379"},
		ContextTimeoutEnabled: true,
		DialTimeout:           200 * time.Millisecond,
		DialerRetries:         1,
		ReadTimeout:           100 * time.Millisecond,
		WriteTimeout:          100 * time.Millisecond,
		PoolTimeout:           100 * time.Millisecond,
		MaxRetries:            -1,
	})
	defer client.Close()
	_ = redisstore.New(client, redisstore.WithTimeout(50*time.Millisecond))
}
