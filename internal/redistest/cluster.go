package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a Redis Cluster of masters without replicas, each a Server owned by the test.
type Cluster struct {
	t     testing.TB
	nodes []*Server
}

// StartCluster starts masters cluster-enabled servers, joins them with
// `redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes` (slots split evenly), and returns
// once every node reports cluster_state:ok. redis-cli needs at least 3 masters.
func StartCluster(t testing.TB, masters int) *Cluster {
	t.Helper()
	if masters < 3 {
		t.Fatalf("redistest: a Redis Cluster needs at least 3 masters, got %d", masters)
	}
	requireBinary(t, "redis-server")
	requireBinary(t, "redis-cli")
	c := &Cluster{t: t}
	for range masters {
		c.nodes = append(c.nodes, Start(t,
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "5000",
		))
	}

	args := []string{"--cluster", "create"}
	args = append(args, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitOK()
	return c
}

// WaitOK returns once every node reports cluster_state:ok (it sees all 16384 slots served), failing the
// test after a deadline. Call it after restarting a node.
func (c *Cluster) WaitOK() {
	c.t.Helper()
	deadline := time.Now().Add(startTimeout)
	for _, n := range c.nodes {
		for {
			info, err := n.Do("CLUSTER", "INFO")
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("redistest: node %s not ok: %v\n%s", n.Addr(), err, info)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// Addrs returns the nodes' addresses, in start order.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// Nodes returns the cluster's servers, in start order, to inspect (DBSIZE) or stop one of them.
func (c *Cluster) Nodes() []*Server { return c.nodes }

// Client returns a new cluster client with go-redis defaults except ContextTimeoutEnabled. It is closed
// when the test ends.
func (c *Cluster) Client() *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), ContextTimeoutEnabled: true})
	c.t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// String describes the cluster for test logs.
func (c *Cluster) String() string { return fmt.Sprintf("cluster%v", c.Addrs()) }
