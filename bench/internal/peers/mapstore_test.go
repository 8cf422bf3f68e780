package peers

import (
	"context"
	"testing"
	"time"

	cachestore "github.com/goware/cachestore2"
)

func TestMapStoreThroughCachestoreAdapter(t *testing.T) {
	ctx := context.Background()
	m := NewMapStore()
	// go-chi/stampede opens its backend with cachestore.OpenStore; values go through as they are.
	s := cachestore.OpenStore[[]byte](m)
	if err := s.SetEx(ctx, "k", []byte("v"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := s.Get(ctx, "k"); err != nil || !ok || string(v) != "v" {
		t.Fatalf("Get: %q %v %v", v, ok, err)
	}
	if _, ok, _ := s.Get(ctx, "missing"); ok {
		t.Fatal("Get of a missing key found something")
	}
	if err := s.SetEx(ctx, "short", []byte("v"), time.Nanosecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Millisecond)
	if _, ok, _ := s.Get(ctx, "short"); ok {
		t.Fatal("an expired entry was found")
	}
	if err := s.DeletePrefix(ctx, "k"); err != nil || m.Len() != 0 {
		t.Fatalf("DeletePrefix: %v, %d entries left", err, m.Len())
	}
	if err := s.SetEx(ctx, "", []byte("v"), 0); err == nil {
		t.Fatal("an empty key was accepted")
	}
}

func TestGoChiNilWithoutTheAdapter(t *testing.T) {
	if mw, _ := GoChiMiddleware(time.Hour); mw != nil {
		t.Fatal("GoChiMiddleware is not nil without go-chi")
	}
	if GoChiDo(time.Hour, nil) != nil {
		t.Fatal("GoChiDo is not nil without go-chi")
	}
}
