package stampede_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"time"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
)

type user struct {
	ID   int
	Name string
}

// A Loader in front of a database query: one load per key however many callers ask at once, values kept
// in memory as Go values (no encoding), missing users remembered for a minute.
func ExampleLoader() {
	values, err := memstore.NewValues[any](10_000)
	if err != nil {
		panic(err)
	}
	defer values.Close()
	queries := 0
	users := stampede.NewLoader("users", func(ctx context.Context, id int) (user, error) {
		queries++ // SELECT id, name FROM users WHERE id = $1
		if id > 100 {
			return user{}, stampede.ErrNotFound
		}
		return user{ID: id, Name: fmt.Sprint("user ", id)}, nil
	},
		stampede.WithValues(values),
		stampede.WithTTL(time.Minute),
		stampede.WithErrorTTL(func(err error) time.Duration {
			if errors.Is(err, stampede.ErrNotFound) {
				return time.Minute
			}
			return 0
		}),
	)
	defer users.Close()
	ctx := context.Background()

	for range 3 {
		u, _ := users.Get(ctx, 7)
		fmt.Println(u.Name)
		users.Wait() // for the example's output only: the value is stored in the background
	}
	_, err = users.Get(ctx, 999)
	users.Wait()
	_, err2 := users.Get(ctx, 999)
	fmt.Println(errors.Is(err, stampede.ErrNotFound), errors.Is(err2, stampede.ErrNotFound))
	fmt.Println("queries:", queries)
	// Output:
	// user 7
	// user 7
	// user 7
	// true true
	// queries: 2
}

// GetMany reads every key in one store call and loads the missing ones with one batch query.
func ExampleLoader_GetMany() {
	store, err := memstore.New(16 << 20)
	if err != nil {
		panic(err)
	}
	defer store.Close()
	byID := func(ctx context.Context, id int) (string, error) { return fmt.Sprint("user ", id), nil }
	var batches [][]int
	users := stampede.NewLoader("users", byID, stampede.WithStore(store),
		stampede.WithBatchLoad(func(ctx context.Context, ids []int) (map[int]string, error) {
			batches = append(batches, slices.Sorted(slices.Values(ids))) // SELECT ... WHERE id = ANY($1)
			out := make(map[int]string, len(ids))
			for _, id := range ids {
				if id != 4 { // no user 4
					out[id] = fmt.Sprint("user ", id)
				}
			}
			return out, nil
		}))
	defer users.Close()
	ctx := context.Background()
	_, _ = users.Get(ctx, 1)
	users.Wait()

	got, err := users.GetMany(ctx, []int{1, 2, 3, 4})
	users.Wait()
	fmt.Println(len(got), got[3], err)
	fmt.Println("batch loads:", batches)
	// Output:
	// 3 user 3 <nil>
	// batch loads: [[2 3 4]]
}

// go-chi/stampede's Do: a function coalesced and cached under a key.
func ExampleStampede_Do() {
	values, err := memstore.NewValues[string](1000)
	if err != nil {
		panic(err)
	}
	defer values.Close()
	s := stampede.NewStampede(slog.Default(), values, stampede.WithTTL(time.Minute))
	runs := 0
	fn := func() (string, *time.Duration, error) {
		runs++
		return "result1", nil, nil
	}
	for range 3 {
		v, err := s.Do(context.Background(), "t1", fn)
		fmt.Println(v, err)
		s.Wait()
	}
	fmt.Println("runs:", runs)
	// Output:
	// result1 <nil>
	// result1 <nil>
	// result1 <nil>
	// runs: 1
}

// go-chi/stampede's with-key example: the key function keys on the Authorization token, and says so with
// PerCredential, so that requests with the same token share a cached page and others never do.
func ExamplePerCredential() {
	store, err := memstore.New(16 << 20)
	if err != nil {
		panic(err)
	}
	defer store.Close()
	customCacheKeyFunc := stampede.PerCredential(func(r *http.Request) (uint64, error) {
		token := r.Header.Get("Authorization")
		return stampede.StringToHash(r.Method, strings.ToLower(token)), nil
	})
	cache := stampede.New(nil, store, 5*time.Second, stampede.WithCredentialKeyFunc(customCacheKeyFunc))
	h := cache.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(r.Header.Get("Authorization")))
	}))
	for _, token := range []string{"Bar", "Bar", "Foo"} {
		req, _ := http.NewRequest(http.MethodGet, "http://example.com/me", nil)
		req.Header.Set("Authorization", token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		cache.Wait()
		fmt.Println(rec.Body.String(), rec.Header().Get("X-Cache"))
	}
	// Output:
	// Bar MISS
	// Bar HIT
	// Foo MISS
}
