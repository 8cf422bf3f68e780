// Package peers holds what the benchmarks need to measure go-chi/stampede (github.com/go-chi/stampede,
// the design stampede is compared with) beside stampede and the floor, without making it a dependency
// of the bench module.
//
// go-chi/stampede is compiled in only by the go-chi adapter program, which internal/suite builds in a
// Go workspace that uses a checkout of it when cmd/bench is given -gochi DIR; the adapter sets GoChi.
// Elsewhere GoChi is nil and the go-chi variants are skipped.
//
// Its in-memory backend, github.com/goware/cachestore-mem, is not available from the Go module proxy,
// so the go-chi variants run on MapStore, a stand-in written here: every number measured with it says
// so ("stand-in map store").
package peers

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	cachestore "github.com/goware/cachestore2"
)

// MapStore is a STAND-IN for github.com/goware/cachestore-mem, not that package: a map guarded by one
// mutex, implementing github.com/goware/cachestore2's Backend (v0.12.2) for go-chi/stampede. It keeps
// values as they are given (no serialisation, as cachestore2's adapter expects of an in-memory backend),
// honours the TTL of SetEx on Get, and has no size bound and no eviction: cachestore-mem is an LRU with
// a capacity, whose hit path also updates recency under a lock, which this map does not model.
type MapStore struct {
	mu      sync.Mutex
	entries map[string]mapEntry
	options cachestore.StoreOptions
}

type mapEntry struct {
	value   any
	expires time.Time // zero: never
}

var _ cachestore.Backend = (*MapStore)(nil)

// NewMapStore returns an empty stand-in store.
func NewMapStore() *MapStore {
	return &MapStore{entries: map[string]mapEntry{}, options: cachestore.ApplyOptions()}
}

// Name implements cachestore.Store.
func (m *MapStore) Name() string { return "stand-in map store" }

// Options implements cachestore.Store.
func (m *MapStore) Options() cachestore.StoreOptions { return m.options }

// Len returns how many entries the store holds, expired or not.
func (m *MapStore) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}

// Exists implements cachestore.Store.
func (m *MapStore) Exists(ctx context.Context, key string) (bool, error) {
	_, ok, err := m.Get(ctx, key)
	return ok, err
}

// Set implements cachestore.Store: the entry never expires.
func (m *MapStore) Set(ctx context.Context, key string, value any) error {
	return m.SetEx(ctx, key, value, 0)
}

// SetEx implements cachestore.Store; a ttl of 0 or less means no expiry.
func (m *MapStore) SetEx(_ context.Context, key string, value any, ttl time.Duration) error {
	if err := checkKey(key); err != nil {
		return err
	}
	e := mapEntry{value: value}
	if ttl > 0 {
		e.expires = time.Now().Add(ttl)
	}
	m.mu.Lock()
	m.entries[key] = e
	m.mu.Unlock()
	return nil
}

// BatchSet implements cachestore.Store.
func (m *MapStore) BatchSet(ctx context.Context, keys []string, values []any) error {
	return m.BatchSetEx(ctx, keys, values, 0)
}

// BatchSetEx implements cachestore.Store.
func (m *MapStore) BatchSetEx(ctx context.Context, keys []string, values []any, ttl time.Duration) error {
	if len(keys) != len(values) {
		return errors.New("stand-in map store: keys and values differ in length")
	}
	for i, k := range keys {
		if err := m.SetEx(ctx, k, values[i], ttl); err != nil {
			return err
		}
	}
	return nil
}

// Get implements cachestore.Store.
func (m *MapStore) Get(_ context.Context, key string) (any, bool, error) {
	m.mu.Lock()
	e, ok := m.entries[key]
	if ok && !e.expires.IsZero() && time.Now().After(e.expires) {
		delete(m.entries, key)
		ok = false
	}
	m.mu.Unlock()
	if !ok {
		return nil, false, nil
	}
	return e.value, true, nil
}

// BatchGet implements cachestore.Store.
func (m *MapStore) BatchGet(ctx context.Context, keys []string) ([]any, []bool, error) {
	values, found := make([]any, len(keys)), make([]bool, len(keys))
	for i, k := range keys {
		values[i], found[i], _ = m.Get(ctx, k)
	}
	return values, found, nil
}

// Delete implements cachestore.Store.
func (m *MapStore) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	delete(m.entries, key)
	m.mu.Unlock()
	return nil
}

// DeletePrefix implements cachestore.Store.
func (m *MapStore) DeletePrefix(_ context.Context, prefix string) error {
	if prefix == "" {
		return cachestore.ErrInvalidKeyPrefix
	}
	m.mu.Lock()
	for k := range m.entries {
		if strings.HasPrefix(k, prefix) {
			delete(m.entries, k)
		}
	}
	m.mu.Unlock()
	return nil
}

// ClearAll implements cachestore.Store.
func (m *MapStore) ClearAll(context.Context) error {
	m.mu.Lock()
	clear(m.entries)
	m.mu.Unlock()
	return nil
}

// GetOrSetWithLock implements cachestore.Store.
func (m *MapStore) GetOrSetWithLock(ctx context.Context, key string, getter func(context.Context, string) (any, error)) (any, error) {
	return m.GetOrSetWithLockEx(ctx, key, getter, 0)
}

// GetOrSetWithLockEx implements cachestore.Store. The getter runs under no lock of the store's: two
// callers that miss at once may both run it (go-chi/stampede does not call this method).
func (m *MapStore) GetOrSetWithLockEx(ctx context.Context, key string, getter func(context.Context, string) (any, error), ttl time.Duration) (any, error) {
	if v, ok, _ := m.Get(ctx, key); ok {
		return v, nil
	}
	v, err := getter(ctx, key)
	if err != nil {
		return nil, err
	}
	return v, m.SetEx(ctx, key, v, ttl)
}

func checkKey(key string) error {
	switch {
	case key == "":
		return cachestore.ErrInvalidKey
	case len(key) > cachestore.MaxKeyLength:
		return cachestore.ErrKeyLengthTooLong
	}
	return nil
}
