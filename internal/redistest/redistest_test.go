package redistest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
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

// TestFailover: each way of failing over a Sentinel group and a Redis Cluster (the master killed with
// SIGKILL, the master frozen with SIGSTOP, a planned failover) makes a former replica the master, which
// still holds what was written before (acknowledged by a replica with WAIT), and the group's clients
// reach it. Nothing here depends on how long a failover takes.
func TestFailover(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"kill", "freeze", "planned"} {
		t.Run("sentinel "+how, func(t *testing.T) {
			t.Parallel()
			g := StartSentinel(t, SentinelConfig{DownAfter: time.Second})
			old := g.Master()
			if old != g.Servers()[0] {
				t.Fatalf("master %s, want the first server %s", old.Addr(), g.Servers()[0].Addr())
			}
			c := g.Client()
			writeAcked(t, c, "k", "v")
			var successor *Server
			switch how {
			case "kill":
				old.Stop()
				successor = g.WaitFailover(old)
			case "freeze":
				old.Freeze()
				successor = g.WaitFailover(old)
				old.Thaw()
			case "planned":
				successor = g.Failover()
			}
			if successor == old || successor != g.Servers()[1] {
				t.Fatalf("new master %s, want the replica %s", successor.Addr(), g.Servers()[1].Addr())
			}
			if got, err := successor.Do("GET", "k"); err != nil || got != "v" {
				t.Fatalf("GET k on the new master = %q, %v; want v", got, err)
			}
			readThrough(t, func(ctx context.Context) (string, error) { return c.Get(ctx, "k").Result() })
			if how != "freeze" {
				return // the sentinels take seconds to convert a returning master; once is enough
			}
			// A frozen old master comes back as the new master's replica.
			g.WaitSynced()
			if role, err := old.Role(); err != nil || role != "slave" {
				t.Fatalf("old master's role after the failover = %q, %v; want slave", role, err)
			}
		})
	}
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		cl := StartClusterWith(t, ClusterConfig{Masters: 3, Replicas: 1, NodeTimeout: time.Second})
		t.Logf("started at %v", time.Since(start))
		if n := len(cl.Nodes()); n != 6 {
			t.Fatalf("%d nodes, want 6", n)
		}
		masters := cl.Masters()
		if len(masters) != 3 {
			t.Fatalf("%d masters, want 3", len(masters))
		}
		c := cl.Client()
		// One failover per shard, in turn: each key lives on the master that fails.
		for i, how := range []string{"kill", "freeze", "planned"} {
			old := masters[i]
			replicas := cl.ReplicasOf(old)
			if len(replicas) != 1 {
				t.Fatalf("%s: master %s has %d replicas, want 1", how, old.Addr(), len(replicas))
			}
			key := keyOn(t, cl, old)
			writeAcked(t, c, key, how)
			var successor *Server
			switch how {
			case "kill":
				old.Stop()
				successor = cl.WaitFailover(old)
			case "freeze":
				old.Freeze()
				successor = cl.WaitFailover(old)
				old.Thaw()
			case "planned":
				successor = cl.Failover(old)
			}
			if successor != replicas[0] {
				t.Fatalf("%s: new master %s, want the replica %s", how, successor.Addr(), replicas[0].Addr())
			}
			if got := cl.MasterOf(key); got != successor {
				t.Fatalf("%s: key %q served by %s, want %s", how, key, got.Addr(), successor.Addr())
			}
			if got, err := successor.Do("GET", key); err != nil || got != how {
				t.Fatalf("%s: GET %s on the new master = %q, %v", how, key, got, err)
			}
			// go-redis follows a slot's new master only once it reloads its slot map: on a MOVED reply
			// (a planned failover), or after ClusterStateReloadInterval (60 s) unless told to.
			readThrough(t, func(ctx context.Context) (string, error) {
				v, err := c.Get(ctx, key).Result()
				if err != nil {
					c.ReloadState(ctx)
				}
				return v, err
			})
			if how != "kill" {
				waitFor(t, "the old master to replicate the new one", func() (bool, string) {
					rs := cl.ReplicasOf(successor)
					return len(rs) == 1 && rs[0] == old, fmt.Sprintf("replicas of %s: %v", successor.Addr(), rs)
				})
				cl.WaitSynced()
			}
			t.Logf("%s: done at %v", how, time.Since(start))
		}
	})
}

// writeAcked sets key and waits until a replica has it (WAIT 1), so a failover cannot lose it.
func writeAcked(t *testing.T, c redis.UniversalClient, key, value string) {
	t.Helper()
	ctx := context.Background()
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, key, value, 0)
		p.Do(ctx, "WAIT", 1, 0) // 0: no timeout; the replica is in sync
		return nil
	})
	if err != nil {
		t.Fatalf("SET %s with WAIT: %v", key, err)
	}
}

// readThrough reads through a client until it answers, as a client does after a failover: the first
// tries may go to the old master. It fails the test when no try succeeds for a minute.
func readThrough(t *testing.T, get func(context.Context) (string, error)) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := get(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the client does not reach the new master: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// keyOn returns a key whose slot master serves.
func keyOn(t *testing.T, cl *Cluster, master *Server) string {
	t.Helper()
	for i := range 1000 {
		k := fmt.Sprintf("key-%d", i)
		if cl.MasterOf(k) == master {
			return k
		}
	}
	t.Fatalf("no key on %s", master.Addr())
	return ""
}

func TestParseClusterNodes(t *testing.T) {
	text := "07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,host.example slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected\n" +
		"e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460 5462 [5461->-67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1]\n" +
		"6ec23923021cf3ffec47632106199cb7f496ce01 127.0.0.1:30005@31005 master,fail - 1426238316232 0 5 disconnected\n"
	nodes, err := parseClusterNodes(text)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 3 {
		t.Fatalf("%d nodes, want 3", len(nodes))
	}
	r := nodes["127.0.0.1:30004"]
	if r.master != "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca" || !r.has("slave") || len(r.slots) != 0 {
		t.Errorf("replica: %+v", r)
	}
	m := nodes["127.0.0.1:30001"]
	if m.master != "" || !m.has("master") || !m.serves(0) || !m.serves(5460) || !m.serves(5462) || m.serves(5461) || m.serves(5463) {
		t.Errorf("master: %+v", m)
	}
	if f := nodes["127.0.0.1:30005"]; !f.has("fail") || f.link != "disconnected" {
		t.Errorf("failed master: %+v", f)
	}
	for _, bad := range []string{"a b c\n", "id 1.2.3.4:5@6 master - 0 0 1 connected x-y\n"} {
		if _, err := parseClusterNodes(bad); err == nil {
			t.Errorf("parseClusterNodes(%q): no error", bad)
		}
	}
}
