package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a Redis Cluster whose nodes are each a Server owned by the test: masters, and replicas when
// ClusterConfig asks for them.
type Cluster struct {
	t     TB
	nodes []*Server

	mu       sync.Mutex     // guards lastSlot
	lastSlot map[string]int // node address -> a slot it served when last seen as a master
}

// ClusterConfig describes the cluster StartClusterWith starts.
type ClusterConfig struct {
	// Masters is the number of masters, at least 3 (redis-cli refuses fewer).
	Masters int
	// Replicas is the number of replicas of each master (default 0).
	Replicas int
	// NodeTimeout is the cluster-node-timeout: how long a master may not answer before the others count
	// it as failed and one of its replicas takes over (default 5 s). It is rounded to milliseconds.
	NodeTimeout time.Duration
	// ServerArgs are passed to every node's redis-server after the cluster's own arguments, such as
	// "--cluster-require-full-coverage", "no".
	ServerArgs []string
}

// StartCluster starts masters cluster-enabled servers without replicas, joins them with
// `redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes` (slots split evenly), and returns
// once every node reports cluster_state:ok. redis-cli needs at least 3 masters.
func StartCluster(t TB, masters int) *Cluster {
	t.Helper()
	return StartClusterWith(t, ClusterConfig{Masters: masters})
}

// StartClusterWith starts the cluster cfg describes and returns once every node reports
// cluster_state:ok, every replica has synchronised with its master, and every node knows every other
// one: a master that fails from then on is replaced by one of its replicas.
func StartClusterWith(t TB, cfg ClusterConfig) *Cluster {
	t.Helper()
	if cfg.Masters < 3 {
		t.Fatalf("redistest: a Redis Cluster needs at least 3 masters, got %d", cfg.Masters)
	}
	if cfg.Replicas < 0 {
		t.Fatalf("redistest: ClusterConfig.Replicas is %d, want >= 0", cfg.Replicas)
	}
	if cfg.NodeTimeout <= 0 {
		cfg.NodeTimeout = 5 * time.Second
	}
	requireBinary(t, "redis-server")
	requireBinary(t, "redis-cli")
	c := &Cluster{t: t, lastSlot: make(map[string]int)}
	for range cfg.Masters * (1 + cfg.Replicas) {
		args := []string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", strconv.FormatInt(max(cfg.NodeTimeout.Milliseconds(), 1), 10),
		}
		c.nodes = append(c.nodes, Start(t, append(args, cfg.ServerArgs...)...))
	}

	// redis-cli makes the first Masters addresses masters and assigns the rest as their replicas.
	args := []string{"--cluster", "create"}
	args = append(args, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(cfg.Replicas), "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitOK()
	c.WaitSynced()
	return c
}

// WaitOK returns once every running node reports cluster_state:ok (it sees all 16384 slots served),
// failing the test after a deadline. Call it after restarting a node.
func (c *Cluster) WaitOK() {
	c.t.Helper()
	c.waitFor("every running node reports cluster_state:ok", func() (bool, string) {
		for _, n := range c.running() {
			info, err := n.Do("CLUSTER", "INFO")
			if err != nil || !strings.Contains(info, "cluster_state:ok") {
				return false, fmt.Sprintf("node %s: %v\n%s", n.Addr(), err, info)
			}
		}
		return true, ""
	})
}

// WaitSynced returns once every running node knows every other running node as connected, every
// running replica's link to its master is up, and every running node reports cluster_state:ok.
func (c *Cluster) WaitSynced() {
	c.t.Helper()
	c.waitFor("the cluster is in sync", func() (bool, string) {
		running := c.running()
		for _, n := range running {
			nodes, err := c.nodesFrom(n)
			if err != nil {
				return false, err.Error()
			}
			for _, m := range running {
				v, ok := nodes[m.Addr()]
				if !ok || v.has("fail") || v.has("fail?") || v.has("handshake") || v.has("noaddr") || v.link != "connected" && !v.has("myself") {
					return false, fmt.Sprintf("node %s sees %s as %+v", n.Addr(), m.Addr(), v)
				}
			}
			info, err := n.Do("CLUSTER", "INFO")
			if err != nil || !strings.Contains(info, "cluster_state:ok") {
				return false, fmt.Sprintf("node %s: %v", n.Addr(), err)
			}
			repl, err := n.Info("replication")
			if err != nil {
				return false, err.Error()
			}
			if infoField(repl, "role") == "slave" && infoField(repl, "master_link_status") != "up" {
				return false, fmt.Sprintf("replica %s: master link %s", n.Addr(), infoField(repl, "master_link_status"))
			}
		}
		return true, ""
	})
}

// Addrs returns the nodes' addresses, in start order.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// Nodes returns the cluster's servers, in start order (the masters first, as started), to inspect
// (DBSIZE) or stop one of them.
func (c *Cluster) Nodes() []*Server { return c.nodes }

// Masters returns the servers that are masters serving slots now, as a running node sees the cluster,
// in start order.
func (c *Cluster) Masters() []*Server {
	c.t.Helper()
	nodes := c.view()
	var masters []*Server
	for _, n := range c.nodes {
		if v, ok := nodes[n.Addr()]; ok && v.has("master") && !v.has("fail") && len(v.slots) > 0 {
			masters = append(masters, n)
		}
	}
	return masters
}

// MasterOf returns the master serving key's slot now, as a running node sees the cluster.
func (c *Cluster) MasterOf(key string) *Server {
	c.t.Helper()
	n := c.running()
	if len(n) == 0 {
		c.t.Fatalf("redistest: no cluster node is running")
	}
	s, err := n[0].Do("CLUSTER", "KEYSLOT", key)
	if err != nil {
		c.t.Fatalf("redistest: CLUSTER KEYSLOT: %v", err)
	}
	sl, err := strconv.Atoi(s)
	if err != nil {
		c.t.Fatalf("redistest: CLUSTER KEYSLOT %q: %q", key, s)
	}
	nodes := c.view()
	for _, srv := range c.nodes {
		if v, ok := nodes[srv.Addr()]; ok && v.has("master") && !v.has("fail") && v.serves(sl) {
			return srv
		}
	}
	c.t.Fatalf("redistest: no master serves slot %d", sl)
	return nil
}

// ReplicasOf returns the servers replicating master now, as a running node sees the cluster.
func (c *Cluster) ReplicasOf(master *Server) []*Server {
	c.t.Helper()
	nodes := c.view()
	m, ok := nodes[master.Addr()]
	if !ok {
		c.t.Fatalf("redistest: %s is not a node of the cluster", master.Addr())
	}
	var replicas []*Server
	for _, n := range c.nodes {
		if v, ok := nodes[n.Addr()]; ok && v.master == m.id && !v.has("fail") {
			replicas = append(replicas, n)
		}
	}
	return replicas
}

// Failover makes a replica of master take its place with CLUSTER FAILOVER, the planned failover: master
// stops accepting writes, the replica catches up with it and takes over, and master becomes its replica.
// It returns the new master once WaitFailover would.
func (c *Cluster) Failover(master *Server) *Server {
	c.t.Helper()
	replicas := c.ReplicasOf(master)
	if len(replicas) == 0 {
		c.t.Fatalf("redistest: master %s has no replica to fail over to", master.Addr())
	}
	if _, err := replicas[0].Do("CLUSTER", "FAILOVER"); err != nil {
		c.t.Fatalf("redistest: CLUSTER FAILOVER on %s: %v", replicas[0].Addr(), err)
	}
	return c.WaitFailover(master)
}

// WaitFailover returns the master that replaced old (killed, frozen, or handed over by Failover) once
// it says it is a master, every running node other than old says it serves old's slots, and every
// running node reports cluster_state:ok. old must have been seen as a master by the Cluster (it was
// started as one, or Masters or MasterOf returned it).
func (c *Cluster) WaitFailover(old *Server) *Server {
	c.t.Helper()
	c.mu.Lock()
	slot, ok := c.lastSlot[old.Addr()]
	c.mu.Unlock()
	if !ok {
		c.t.Fatalf("redistest: %s was never seen serving slots", old.Addr())
	}
	var successor *Server
	c.waitFor("a replica of "+old.Addr()+" takes over its slots", func() (bool, string) {
		live := c.runningExcept(old)
		if len(live) == 0 {
			return false, "no node is running"
		}
		// Node by node, stopping at the first that has not seen the failover: most polls cost one
		// connection, which matters to a cluster already busy failing over.
		successor = nil
		for _, n := range live {
			view, err := c.nodesFrom(n)
			if err != nil {
				return false, err.Error()
			}
			var owner string
			for addr, v := range view {
				if v.has("master") && !v.has("fail") && v.serves(slot) {
					owner = addr
				}
			}
			if owner == "" || owner == old.Addr() {
				return false, fmt.Sprintf("%s sees slot %d served by %q", n.Addr(), slot, owner)
			}
			s := c.node(owner)
			if s == nil || successor != nil && s != successor {
				return false, fmt.Sprintf("the running nodes disagree on slot %d's master", slot)
			}
			successor = s
		}
		if role, err := successor.Role(); err != nil || role != "master" {
			return false, fmt.Sprintf("%s says role %q (%v)", successor.Addr(), role, err)
		}
		for _, n := range live {
			info, err := n.Do("CLUSTER", "INFO")
			if err != nil || !strings.Contains(info, "cluster_state:ok") {
				return false, fmt.Sprintf("node %s not ok: %v", n.Addr(), err)
			}
		}
		return true, ""
	})
	return successor
}

// WaitReplicated returns once every running replica of master has received everything master had
// written when it was called (its replication offset has reached master's), so that a failover that
// follows loses none of it.
func (c *Cluster) WaitReplicated(master *Server) {
	c.t.Helper()
	waitReplicated(c.t, master, len(c.ReplicasOf(master)))
}

// Client returns a new cluster client with go-redis defaults except ContextTimeoutEnabled. It is closed
// when the test ends.
func (c *Cluster) Client() *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), ContextTimeoutEnabled: true})
	c.t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// String describes the cluster for test logs.
func (c *Cluster) String() string { return fmt.Sprintf("cluster%v", c.Addrs()) }

// running returns the nodes that can answer now.
func (c *Cluster) running() []*Server { return c.runningExcept(nil) }

func (c *Cluster) runningExcept(skip *Server) []*Server {
	var r []*Server
	for _, n := range c.nodes {
		if n != skip && n.Running() {
			r = append(r, n)
		}
	}
	return r
}

// node returns the server at addr, or nil.
func (c *Cluster) node(addr string) *Server {
	for _, n := range c.nodes {
		if n.Addr() == addr {
			return n
		}
	}
	return nil
}

// view returns CLUSTER NODES as the first running node that answers sees it.
func (c *Cluster) view() map[string]clusterNode {
	c.t.Helper()
	var last error
	for _, n := range c.running() {
		v, err := c.nodesFrom(n)
		if err == nil {
			return v
		}
		last = err
	}
	c.t.Fatalf("redistest: no running cluster node answers CLUSTER NODES: %v", last)
	return nil
}

func (c *Cluster) nodesFrom(n *Server) (map[string]clusterNode, error) {
	text, err := n.Do("CLUSTER", "NODES")
	if err != nil {
		return nil, fmt.Errorf("CLUSTER NODES on %s: %w", n.Addr(), err)
	}
	nodes, err := parseClusterNodes(text)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	for addr, v := range nodes {
		if v.has("master") && !v.has("fail") && len(v.slots) > 0 {
			c.lastSlot[addr] = v.slots[0][0]
		}
	}
	c.mu.Unlock()
	return nodes, nil
}

// waitFor polls cond until it holds, failing the test with its last explanation after startTimeout.
func (c *Cluster) waitFor(what string, cond func() (bool, string)) {
	c.t.Helper()
	waitFor(c.t, what, cond)
}

// waitFor polls cond every 20 ms until it holds, failing t with cond's last explanation after
// startTimeout.
func waitFor(t TB, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: waited %v for %s: %s", startTimeout, what, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// clusterNode is one line of CLUSTER NODES.
type clusterNode struct {
	id     string
	addr   string // host:port, without the bus port
	flags  []string
	master string // the id of its master, "" for a master
	link   string // "connected" or "disconnected"
	slots  [][2]int
}

func (n clusterNode) has(flag string) bool { return slices.Contains(n.flags, flag) }

func (n clusterNode) serves(slot int) bool {
	for _, r := range n.slots {
		if slot >= r[0] && slot <= r[1] {
			return true
		}
	}
	return false
}

// parseClusterNodes parses CLUSTER NODES: "<id> <ip:port@cport[,hostname]> <flags> <master> <ping-sent>
// <pong-recv> <config-epoch> <link-state> <slot> <slot> ...", one node a line, keyed by ip:port. Slots
// being imported or migrated ("[...]") are left out.
func parseClusterNodes(text string) (map[string]clusterNode, error) {
	nodes := make(map[string]clusterNode)
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 8 {
			return nil, fmt.Errorf("CLUSTER NODES line %q has %d fields, want at least 8", line, len(f))
		}
		addr, _, _ := strings.Cut(f[1], "@")
		addr, _, _ = strings.Cut(addr, ",")
		n := clusterNode{id: f[0], addr: addr, flags: strings.Split(f[2], ","), link: f[7]}
		if f[3] != "-" {
			n.master = f[3]
		}
		for _, s := range f[8:] {
			if strings.HasPrefix(s, "[") {
				continue
			}
			lo, hi, isRange := strings.Cut(s, "-")
			a, err := strconv.Atoi(lo)
			if err != nil {
				return nil, fmt.Errorf("CLUSTER NODES: bad slot %q in %q", s, line)
			}
			b := a
			if isRange {
				if b, err = strconv.Atoi(hi); err != nil {
					return nil, fmt.Errorf("CLUSTER NODES: bad slot range %q in %q", s, line)
				}
			}
			n.slots = append(n.slots, [2]int{a, b})
		}
		nodes[addr] = n
	}
	return nodes, nil
}
