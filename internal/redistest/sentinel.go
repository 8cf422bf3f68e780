package redistest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sentinel is a Redis replication group watched by Sentinel: data servers (a master and its replicas)
// and sentinel processes (redis-server --sentinel), each a Server owned by the test.
type Sentinel struct {
	t         TB
	name      string
	data      []*Server // the data servers, the first started as the master
	sentinels []*Server
}

// SentinelConfig describes the group StartSentinel starts. Zero fields take their defaults.
type SentinelConfig struct {
	// Replicas is the number of replicas of the master (default 1).
	Replicas int
	// Sentinels is the number of sentinel processes (default 3); the quorum is a majority of them.
	Sentinels int
	// DownAfter is down-after-milliseconds: how long the master may not answer before a sentinel counts
	// it as down (default 1 s). A failover starts once a quorum agrees.
	DownAfter time.Duration
	// FailoverTimeout is failover-timeout (default 10 s): among other things, how long a failed failover
	// blocks the next attempt (twice this).
	FailoverTimeout time.Duration
	// ServerArgs are passed to every data server's redis-server, such as "--min-replicas-to-write", "1".
	ServerArgs []string
}

// MasterName is the name the sentinels monitor the group under.
const MasterName = "stampede"

// StartSentinel starts the master, its replicas and the sentinels cfg describes, and returns once the
// replicas have synchronised and every sentinel knows every replica and every other sentinel: from then
// on a master that fails is replaced by a replica.
func StartSentinel(t TB, cfg SentinelConfig) *Sentinel {
	t.Helper()
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.Sentinels == 0 {
		cfg.Sentinels = 3
	}
	if cfg.DownAfter <= 0 {
		cfg.DownAfter = time.Second
	}
	if cfg.FailoverTimeout <= 0 {
		cfg.FailoverTimeout = 10 * time.Second
	}
	if cfg.Replicas < 0 || cfg.Sentinels < 1 {
		t.Fatalf("redistest: SentinelConfig wants Replicas >= 1 and Sentinels >= 1, got %+v", cfg)
	}
	requireBinary(t, "redis-server")
	g := &Sentinel{t: t, name: MasterName}
	master := Start(t, cfg.ServerArgs...)
	g.data = append(g.data, master)
	for range cfg.Replicas {
		args := append([]string{"--replicaof", "127.0.0.1", strconv.Itoa(master.Port())}, cfg.ServerArgs...)
		g.data = append(g.data, Start(t, args...))
	}
	g.WaitSynced()

	quorum := cfg.Sentinels/2 + 1
	for range cfg.Sentinels {
		g.sentinels = append(g.sentinels, startSentinel(t, master, quorum, cfg))
	}
	waitFor(t, "the sentinels know the replicas and each other", func() (bool, string) {
		for _, s := range g.sentinels {
			replicas, err := sentinelTable(s, "SENTINEL", "REPLICAS", g.name)
			if err != nil {
				return false, err.Error()
			}
			up := 0
			for _, r := range replicas {
				if !strings.Contains(r["flags"], "down") && !strings.Contains(r["flags"], "disconnected") &&
					r["master-link-status"] == "ok" {
					up++
				}
			}
			if up != cfg.Replicas {
				return false, fmt.Sprintf("sentinel %s sees %d of %d replicas up", s.Addr(), up, cfg.Replicas)
			}
			others, err := sentinelTable(s, "SENTINEL", "SENTINELS", g.name)
			if err != nil {
				return false, err.Error()
			}
			if len(others) != cfg.Sentinels-1 {
				return false, fmt.Sprintf("sentinel %s knows %d other sentinels of %d", s.Addr(), len(others), cfg.Sentinels-1)
			}
		}
		return true, ""
	})
	return g
}

// startSentinel starts one sentinel process monitoring master.
func startSentinel(t TB, master *Server, quorum int, cfg SentinelConfig) *Server {
	t.Helper()
	s := &Server{t: t, dir: t.TempDir(), args: []string{"--sentinel"}}
	// Sentinel needs a configuration file it can rewrite: it records what it learns there.
	s.conf = filepath.Join(s.dir, "sentinel.conf")
	conf := fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d %d\n"+
		"sentinel down-after-milliseconds %[1]s %[4]d\n"+
		"sentinel failover-timeout %[1]s %[5]d\n"+
		"sentinel parallel-syncs %[1]s 1\n",
		MasterName, master.Port(), quorum, max(cfg.DownAfter.Milliseconds(), 1), max(cfg.FailoverTimeout.Milliseconds(), 1))
	if err := os.WriteFile(s.conf, []byte(conf), 0o600); err != nil {
		t.Fatalf("redistest: write %s: %v", s.conf, err)
	}
	t.Cleanup(s.Stop)
	s.startOnFreePort()
	return s
}

// MasterName returns the name the sentinels monitor the group under (for FailoverOptions.MasterName).
func (g *Sentinel) MasterName() string { return g.name }

// SentinelAddrs returns the sentinels' addresses (for FailoverOptions.SentinelAddrs).
func (g *Sentinel) SentinelAddrs() []string {
	addrs := make([]string, len(g.sentinels))
	for i, s := range g.sentinels {
		addrs[i] = s.Addr()
	}
	return addrs
}

// Sentinels returns the sentinel processes.
func (g *Sentinel) Sentinels() []*Server { return g.sentinels }

// Servers returns the data servers, the one started as the master first.
func (g *Sentinel) Servers() []*Server { return g.data }

// Master returns the data server the first running sentinel names as the master now.
func (g *Sentinel) Master() *Server {
	g.t.Helper()
	for _, s := range g.sentinels {
		if !s.Running() {
			continue
		}
		addr, err := g.masterAddr(s)
		if err != nil {
			continue
		}
		if m := g.server(addr); m != nil {
			return m
		}
		g.t.Fatalf("redistest: sentinel %s names %s the master, which is none of the group's servers", s.Addr(), addr)
	}
	g.t.Fatalf("redistest: no sentinel of the group answers")
	return nil
}

// Failover asks a sentinel for a planned failover (SENTINEL FAILOVER): a replica is promoted without
// the master having failed, and the old master is made its replica. It returns the new master once
// WaitFailover would.
func (g *Sentinel) Failover() *Server {
	g.t.Helper()
	old := g.Master()
	waitFor(g.t, "a sentinel accepts SENTINEL FAILOVER", func() (bool, string) {
		for _, s := range g.sentinels {
			if !s.Running() {
				continue
			}
			// NOGOODSLAVE: the sentinel has no fresh enough view of a replica yet; INPROG: a failover
			// is already running. Both pass.
			if _, err := s.Do("SENTINEL", "FAILOVER", g.name); err != nil {
				return false, fmt.Sprintf("sentinel %s: %v", s.Addr(), err)
			}
			return true, ""
		}
		return false, "no sentinel is running"
	})
	return g.WaitFailover(old)
}

// WaitFailover returns the data server that replaced old as the master once every running sentinel
// names it and it says it is a master.
func (g *Sentinel) WaitFailover(old *Server) *Server {
	g.t.Helper()
	var successor *Server
	waitFor(g.t, "a replica of "+old.Addr()+" takes over", func() (bool, string) {
		successor = nil
		for _, s := range g.sentinels {
			if !s.Running() {
				continue
			}
			addr, err := g.masterAddr(s)
			if err != nil {
				return false, err.Error()
			}
			m := g.server(addr)
			if m == nil || m == old {
				return false, fmt.Sprintf("sentinel %s names %s", s.Addr(), addr)
			}
			if successor != nil && m != successor {
				return false, "the sentinels disagree on the master"
			}
			successor = m
		}
		if successor == nil {
			return false, "no sentinel is running"
		}
		if role, err := successor.Role(); err != nil || role != "master" {
			return false, fmt.Sprintf("%s says role %q (%v)", successor.Addr(), role, err)
		}
		return true, ""
	})
	return successor
}

// WaitSynced returns once every running data server other than the master replicates the master with
// its link up. After a failover, a returning old master is made a replica by the sentinels some seconds
// after they see it again.
func (g *Sentinel) WaitSynced() {
	g.t.Helper()
	master := g.data[0]
	if len(g.sentinels) > 0 {
		master = g.Master()
	}
	waitFor(g.t, "the replicas replicate "+master.Addr(), func() (bool, string) {
		for _, s := range g.data {
			if s == master || !s.Running() {
				continue
			}
			info, err := s.Info("replication")
			if err != nil {
				return false, err.Error()
			}
			if infoField(info, "role") != "slave" || infoField(info, "master_port") != strconv.Itoa(master.Port()) ||
				infoField(info, "master_link_status") != "up" {
				return false, fmt.Sprintf("%s: role %s, master port %s, link %s", s.Addr(), infoField(info, "role"),
					infoField(info, "master_port"), infoField(info, "master_link_status"))
			}
		}
		return true, ""
	})
}

// WaitReplicated returns once every replica of the current master has received everything the master
// had written when it was called, so that a failover that follows loses none of it.
func (g *Sentinel) WaitReplicated() {
	g.t.Helper()
	master := g.Master()
	n := 0
	for _, s := range g.data {
		if s != master && s.Running() {
			n++
		}
	}
	waitReplicated(g.t, master, n)
}

// Client returns a new failover client of the group with go-redis defaults except
// ContextTimeoutEnabled. It is closed when the test ends.
func (g *Sentinel) Client() *redis.Client {
	c := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName: g.name, SentinelAddrs: g.SentinelAddrs(), ContextTimeoutEnabled: true,
	})
	g.t.Cleanup(func() { _ = c.Close() })
	return c
}

// masterAddr asks sentinel s for the master's address.
func (g *Sentinel) masterAddr(s *Server) (string, error) {
	reply, err := s.DoList("SENTINEL", "GET-MASTER-ADDR-BY-NAME", g.name)
	if err != nil {
		return "", fmt.Errorf("sentinel %s: %w", s.Addr(), err)
	}
	if len(reply) != 2 {
		return "", fmt.Errorf("sentinel %s: GET-MASTER-ADDR-BY-NAME replied %q", s.Addr(), reply)
	}
	return net.JoinHostPort(reply[0], reply[1]), nil
}

// server returns the data server at addr, or nil.
func (g *Sentinel) server(addr string) *Server {
	for _, s := range g.data {
		if s.Addr() == addr {
			return s
		}
	}
	return nil
}

// sentinelTable runs a SENTINEL command whose reply is a list of field-value lists (REPLICAS,
// SENTINELS) and returns one map per entry. Each entry starts with the field "name".
func sentinelTable(s *Server, args ...string) ([]map[string]string, error) {
	flat, err := s.DoList(args...)
	if err != nil {
		return nil, fmt.Errorf("sentinel %s: %s: %w", s.Addr(), strings.Join(args, " "), err)
	}
	var rows []map[string]string
	for i := 0; i+1 < len(flat); i += 2 {
		if flat[i] == "name" {
			rows = append(rows, map[string]string{})
		}
		if len(rows) == 0 {
			return nil, fmt.Errorf("sentinel %s: %s: reply does not start with a name: %q", s.Addr(), strings.Join(args, " "), flat)
		}
		rows[len(rows)-1][flat[i]] = flat[i+1]
	}
	return rows, nil
}
