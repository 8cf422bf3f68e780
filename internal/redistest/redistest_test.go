package redistest

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStartStopRestart(t *testing.T) {
	t.Parallel()
	s := Start(t)
	ctx := context.Background()
	c := s.Client()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if cfg, err := c.ConfigGet(ctx, "save").Result(); err != nil || cfg["save"] != "" {
		t.Fatalf("save = %q, %v; want persistence off", cfg["save"], err)
	}
	addr := s.Addr()

	s.Stop()
	if _, err := s.Do("PING"); err == nil {
		t.Fatal("PING answered after Stop")
	}
	s.Stop() // idempotent

	s.Restart()
	if s.Addr() != addr {
		t.Fatalf("Addr after Restart = %s, want %s", s.Addr(), addr)
	}
	// The same client reconnects; the data is gone because nothing was persisted.
	if n, err := c.Exists(ctx, "k").Result(); err != nil || n != 0 {
		t.Fatalf("EXISTS k after restart = %d, %v; want 0, nil", n, err)
	}
}

// TestPause: commands are not answered while the server is paused. The pause outlasts the test, so a
// PING that gets no answer within its deadline says the server is paused however slow the machine is
// (a server that is not paused answers at once; a very slow machine only makes the check weaker).
func TestPause(t *testing.T) {
	t.Parallel()
	s := Start(t)
	c := s.Client()
	if err := c.Ping(context.Background()).Err(); err != nil { // a connection made before the pause
		t.Fatal(err)
	}
	s.Pause(time.Hour) // until the test kills the server
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("PING answered during CLIENT PAUSE")
	}
}

// TestFreezeThaw: a frozen server answers nothing until it is thawed, then answers what it was sent.
func TestFreezeThaw(t *testing.T) {
	t.Parallel()
	s := Start(t)
	c := s.Client()
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s.Freeze()
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := c.Ping(short).Err(); err == nil {
		t.Fatal("PING answered by a frozen server")
	}
	// A command sent while frozen is answered after the thaw.
	got := make(chan error, 1)
	go func() { got <- c.Get(ctx, "k").Err() }()
	s.Thaw()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("GET after the thaw: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("GET not answered a minute after the thaw")
	}
	s.Freeze()
	s.Stop() // a frozen server can be killed
	s.Restart()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after restarting a frozen server: %v", err)
	}
}

func TestCluster(t *testing.T) {
	t.Parallel()
	cl := StartCluster(t, 3)
	if got := len(cl.Addrs()); got != 3 {
		t.Fatalf("%d nodes, want 3", got)
	}
	for _, n := range cl.Nodes() {
		info, err := n.Do("CLUSTER", "INFO")
		if err != nil || !strings.Contains(info, "cluster_known_nodes:3") {
			t.Fatalf("node %s: %v\n%s", n.Addr(), err, info)
		}
	}
	ctx := context.Background()
	c := cl.Client()
	for _, k := range []string{"a", "b", "c", "d", "e", "f"} {
		if err := c.Set(ctx, k, k, time.Minute).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
	}
	if v, err := c.Get(ctx, "e").Result(); err != nil || v != "e" {
		t.Fatalf("GET e = %q, %v", v, err)
	}
}

func TestCommandCalls(t *testing.T) {
	t.Parallel()
	s := Start(t)
	if n := s.CommandCalls(t, "get"); n != 0 {
		t.Fatalf("GET calls before any GET = %d, want 0", n)
	}
	if _, err := s.Do("SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := s.Do("GET", "k"); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.CommandCalls(t, "GET"); n != 3 {
		t.Fatalf("GET calls = %d, want 3", n)
	}
}
