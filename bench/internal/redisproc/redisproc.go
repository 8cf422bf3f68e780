// Package redisproc starts a throw-away redis-server for the benchmarks and reads its command counters.
package redisproc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed-a1426414/stampede/internal/redisinfo"
)

// Binary is the redis-server the benchmarks start.
const Binary = "/usr/bin/redis-server"

// Server is a redis-server process started by Start.
type Server struct {
	Addr string
	cmd  *exec.Cmd
	dir  string
	done chan struct{}
}

// Start runs redis-server on a free loopback port, persisting nothing, and returns once it answers
// PING. Stop it with Stop.
func Start() (*Server, error) {
	bin := Binary
	if _, err := os.Stat(bin); err != nil {
		p, lerr := exec.LookPath("redis-server")
		if lerr != nil {
			return nil, fmt.Errorf("redis-server not found (apt-get install redis-server): %w", err)
		}
		bin = p
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "stampede-bench-redis-")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", "redis.log", "--maxclients", "20000")
	setDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), cmd: cmd, dir: dir, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if err := Ping(s.Addr); err == nil {
			return s, nil
		}
		select {
		case <-s.done:
			_ = os.RemoveAll(dir)
			return nil, errors.New("redis-server exited at start (port taken?)")
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("redis-server on %s did not answer PING in time", s.Addr)
		}
	}
}

// Stop ends the server and removes its directory.
func (s *Server) Stop() {
	_ = s.cmd.Process.Kill()
	<-s.done
	_ = os.RemoveAll(s.dir)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Ping reports whether a Redis answers at addr.
func Ping(addr string) error {
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return c.Ping(ctx).Err()
}

// Calls returns the calls count of cmd (lower case, e.g. "get") in INFO commandstats of the Redis at
// addr; 0 before its first call.
func Calls(addr, cmd string) (int64, error) {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		return 0, err
	}
	n, err := redisinfo.CommandCalls(info, cmd)
	return int64(n), err
}

// NewClient returns the client the benchmarks put behind redisstore: the settings redisstore's package
// doc recommends (ContextTimeoutEnabled, no retries, 200 ms to dial) with timeout for reads, writes and
// waiting for a pooled connection (the doc recommends 100 ms), and a pool of poolSize connections (0 means
// go-redis's default, 10 per CPU).
func NewClient(addr string, poolSize int, timeout time.Duration) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:                  addr,
		ContextTimeoutEnabled: true,
		DialTimeout:           max(200*time.Millisecond, timeout),
		DialerRetries:         1,
		ReadTimeout:           timeout,
		WriteTimeout:          timeout,
		PoolTimeout:           timeout,
		MaxRetries:            -1,
		PoolSize:              poolSize,
	})
}
