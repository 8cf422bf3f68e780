// Package redistest starts real redis-server processes for tests: a single server on a free loopback
// port that can be killed (SIGKILL), restarted on the same port, paused (CLIENT PAUSE) and frozen
// (SIGSTOP); a Redis Cluster of masters with or without replicas; and a replication group watched by
// Sentinel (a master, its replicas and three sentinel processes). The cluster and the Sentinel group
// fail over on demand: a master killed or frozen until its replicas take over, or a planned failover
// (CLUSTER FAILOVER, SENTINEL FAILOVER), each with a wait for the new master.
//
// Every server lives in its own temporary directory, persists nothing (--save "" --appendonly no) and
// is killed when the test ends. The system redis-server (port 6379) is never used or touched.
//
// The helpers take a [TB]: a *testing.T or *testing.B, or a program's own implementation
// (bench/cmd/failover runs the same set-ups outside a test). When redis-server (or redis-cli, for a
// cluster) is not on PATH the test is skipped, or fails under CI=true, with a message saying how to get
// it.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed-a1426414/stampede/internal/redisinfo"
)

// TB is what the helpers need of a test: *testing.T and *testing.B satisfy it. A program that is not a
// test implements it to run the same set-ups: Fatalf must not return (testing's calls runtime.Goexit),
// Cleanup's functions run when the set-up is done with, last registered first, and TempDir returns a
// new directory removed then.
type TB interface {
	Helper()
	Cleanup(func())
	TempDir() string
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
}

// startTimeout bounds how long a server may take to answer PING after it was started, a port to close
// after a kill, and a cluster to agree. It only catches a server that never comes up: a loaded 2-core
// machine may take seconds for what takes milliseconds on a quiet one.
const startTimeout = time.Minute

// Server is one redis-server process owned by a test.
type Server struct {
	t    TB
	port int
	dir  string
	conf string   // a configuration file passed first (a sentinel's); "" for none
	args []string // extra redis-server arguments, kept for Restart

	mu     sync.Mutex    // guards proc, done and frozen
	proc   *os.Process   // nil while stopped
	done   chan struct{} // closed when proc has exited and been reaped
	frozen bool          // stopped by Freeze and not thawed since
}

// Start starts a redis-server on a free loopback port and returns once it answers PING. The server is
// killed when the test ends. Extra arguments are passed to redis-server after the defaults.
func Start(t TB, args ...string) *Server {
	t.Helper()
	requireBinary(t, "redis-server")
	s := &Server{t: t, dir: t.TempDir(), args: args}
	t.Cleanup(s.Stop)
	s.startOnFreePort()
	return s
}

// Running reports whether the server's process is alive and not frozen: whether it can answer.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil && !s.frozen
}

// Info returns the server's INFO section (such as "replication") as text, on a fresh connection.
func (s *Server) Info(section string) (string, error) { return s.Do("INFO", section) }

// Role returns the server's replication role from INFO ("master" or "slave"), or "" with the error
// when it does not answer.
func (s *Server) Role() (string, error) {
	info, err := s.Info("replication")
	if err != nil {
		return "", err
	}
	return infoField(info, "role"), nil
}

// waitReplicated returns once replicas replicas of master are online and have master's replication
// offset at the time of the call.
func waitReplicated(t TB, master *Server, replicas int) {
	t.Helper()
	info, err := master.Info("replication")
	if err != nil {
		t.Fatalf("redistest: INFO replication on %s: %v", master.Addr(), err)
	}
	target, err := strconv.ParseInt(infoField(info, "master_repl_offset"), 10, 64)
	if err != nil {
		t.Fatalf("redistest: %s has no master_repl_offset: %v", master.Addr(), err)
	}
	waitFor(t, "the replicas of "+master.Addr()+" to catch up", func() (bool, string) {
		info, err := master.Info("replication")
		if err != nil {
			return false, err.Error()
		}
		caught := 0
		for i := range replicas + 8 { // slave0, slave1, ...: more than expected, for replicas that came and went
			line := infoField(info, "slave"+strconv.Itoa(i))
			if line == "" {
				continue
			}
			var state string
			var offset int64 = -1
			for _, kv := range strings.Split(line, ",") {
				k, v, _ := strings.Cut(kv, "=")
				switch k {
				case "state":
					state = v
				case "offset":
					offset, _ = strconv.ParseInt(v, 10, 64)
				}
			}
			if state == "online" && offset >= target {
				caught++
			}
		}
		return caught >= replicas, fmt.Sprintf("%d of %d replicas at offset %d:\n%s", caught, replicas, target, info)
	})
}

// infoField returns the value of name in INFO text ("name:value" lines), or "".
func infoField(info, name string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimRight(line, "\r\n"), name+":"); ok {
			return v
		}
	}
	return ""
}

// Addr returns the server's address, "127.0.0.1:port". It stays the same across Restart.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port returns the server's TCP port.
func (s *Server) Port() int { return s.port }

// Dir returns the server's working directory (its log file is redis.log there).
func (s *Server) Dir() string { return s.dir }

// Client returns a new client of the server with go-redis defaults except ContextTimeoutEnabled, for
// inspecting what a test did (PTTL, STRLEN, INFO). It is closed when the test ends.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), ContextTimeoutEnabled: true})
	s.t.Cleanup(func() { _ = c.Close() })
	return c
}

// Do sends one command on a fresh connection and returns the reply as text (simple string, integer or
// bulk string; the elements of an array, one a line). It needs no go-redis client, so it works while
// clients under test are misbehaving.
func (s *Server) Do(args ...string) (string, error) { return do(s.Addr(), args...) }

// DoList is Do for a command whose reply is an array: its elements, nested arrays flattened.
func (s *Server) DoList(args ...string) ([]string, error) { return doList(s.Addr(), args...) }

// CommandCalls returns how many times the server ran cmd (a command name such as "get" or "mget", any
// case) according to INFO commandstats: 0 before its first call. Its errors end the test through tb.
func (s *Server) CommandCalls(tb TB, cmd string) int {
	tb.Helper()
	info, err := s.Do("INFO", "commandstats")
	if err != nil {
		tb.Fatalf("redistest: INFO commandstats on %s: %v", s.Addr(), err)
	}
	n, err := redisinfo.CommandCalls(info, cmd)
	if err != nil {
		tb.Fatalf("redistest: INFO commandstats on %s: %v", s.Addr(), err)
	}
	return n
}

// Pause suspends every client of the server for d (CLIENT PAUSE ALL): commands are accepted but not
// answered until d has passed, which is how a slow or stalled Redis looks from the client side. Redis
// does not answer CLIENT UNPAUSE while it is paused, so a test that must decide when the stall ends uses
// Freeze and Thaw instead.
func (s *Server) Pause(d time.Duration) {
	s.t.Helper()
	ms := max(d.Milliseconds(), 1)
	if _, err := s.Do("CLIENT", "PAUSE", strconv.FormatInt(ms, 10), "ALL"); err != nil {
		s.t.Fatalf("redistest: CLIENT PAUSE on %s: %v", s.Addr(), err)
	}
}

// Freeze stops the server process (SIGSTOP) until Thaw: connections are still accepted by the kernel and
// commands are buffered, but nothing is answered, which is how a stalled Redis looks from the client side.
// Unlike Pause the stall lasts until the test ends it, so what a test asserts about it does not depend on
// how fast the machine is. Stop and Restart work on a frozen server.
func (s *Server) Freeze() { s.t.Helper(); s.signal("freeze", sigStop, true) }

// Thaw resumes a server stopped by Freeze; it answers the commands buffered meanwhile.
func (s *Server) Thaw() { s.t.Helper(); s.signal("thaw", sigCont, false) }

func (s *Server) signal(what string, sig os.Signal, frozen bool) {
	s.t.Helper()
	if sig == nil {
		s.t.Skipf("redistest: %s needs SIGSTOP and SIGCONT (a Unix system)", what)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		s.t.Fatalf("redistest: %s on port %d: the server is not running", what, s.port)
	}
	if err := s.proc.Signal(sig); err != nil {
		s.t.Fatalf("redistest: %s on port %d: %v", what, s.port, err)
	}
	s.frozen = frozen
}

// Stop kills the server (SIGKILL: no shutdown work, like a crash) and returns once the process is gone
// and its port refuses connections. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.t.Helper()
	s.mu.Lock()
	proc, done := s.proc, s.done
	s.proc, s.frozen = nil, false
	s.mu.Unlock()
	if proc == nil {
		return
	}
	_ = proc.Kill()
	<-done
	deadline := time.Now().Add(startTimeout)
	for {
		c, err := net.DialTimeout("tcp", s.Addr(), 100*time.Millisecond)
		if err != nil {
			return
		}
		_ = c.Close()
		if time.Now().After(deadline) {
			s.t.Errorf("redistest: port %d still accepts connections after the server was killed", s.port)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Restart starts the server again on the same port and directory and returns once it answers PING.
// A running server is stopped first. Data does not survive (nothing is persisted), cluster membership
// does (nodes.conf is kept in the directory).
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	// The port was ours a moment ago; another process may grab it in between, so retry briefly.
	deadline := time.Now().Add(startTimeout)
	for {
		err := s.start()
		if err == nil {
			return
		}
		if !errors.Is(err, errAddrInUse) || time.Now().After(deadline) {
			s.t.Fatalf("redistest: restart on port %d: %v", s.port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var errAddrInUse = errors.New("address already in use")

// startOnFreePort picks a free port and starts the server there, trying another port if the one it
// picked was taken in the gap between probing and binding.
func (s *Server) startOnFreePort() {
	s.t.Helper()
	var err error
	for range 10 {
		s.port = freePort(s.t)
		if err = s.start(); err == nil {
			return
		}
		if !errors.Is(err, errAddrInUse) {
			break
		}
	}
	s.t.Fatalf("redistest: start redis-server: %v", err)
}

// start runs redis-server on s.port and waits until it answers PING or exits.
func (s *Server) start() error {
	logPath := filepath.Join(s.dir, "redis.log")
	var args []string
	if s.conf != "" {
		args = append(args, s.conf) // redis-server reads a configuration file only as its first argument
	}
	args = append(args,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--logfile", logPath,
	)
	args = append(args, s.args...)
	cmd := exec.Command("redis-server", args...)
	setDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.mu.Lock()
	s.proc, s.done = cmd.Process, done
	s.mu.Unlock()

	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-done:
			s.mu.Lock()
			s.proc = nil
			s.mu.Unlock()
			log, _ := os.ReadFile(logPath)
			if strings.Contains(string(log), "Address already in use") {
				return fmt.Errorf("port %d: %w", s.port, errAddrInUse)
			}
			return fmt.Errorf("redis-server exited at start: %s", tail(log))
		default:
		}
		if reply, err := do(s.Addr(), "PING"); err == nil && reply == "PONG" {
			return nil
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("no PONG within %v: %s", startTimeout, tail(log))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// freePort returns a loopback port that was free a moment ago, and whose cluster bus port (port+10000)
// is free too, so the same pick serves single servers and cluster nodes.
func freePort(t TB) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("redistest: listen on loopback: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if port+10000 > 65535 {
			continue
		}
		bus, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+10000)))
		if err != nil {
			continue
		}
		_ = bus.Close()
		return port
	}
	t.Fatalf("redistest: found no free port pair (p, p+10000)")
	return 0
}

// requireBinary skips the test, or fails it under CI=true, when name is not on PATH.
func requireBinary(t TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err == nil {
		return
	}
	msg := name + " not found: run `make test`, which installs it (apt-get install -y redis-server)"
	if os.Getenv("CI") == "true" {
		t.Fatalf("redistest: %s", msg)
	}
	t.Skipf("redistest: %s", msg)
}

// do sends one RESP command on a new connection and reads one reply: a scalar as it is, an array's
// elements one a line.
func do(addr string, args ...string) (string, error) {
	reply, err := roundTrip(addr, args...)
	if err != nil {
		return "", err
	}
	if list, ok := reply.([]string); ok {
		return strings.Join(list, "\n"), nil
	}
	return reply.(string), nil
}

// doList is do for an array reply; a scalar reply is a list of one.
func doList(addr string, args ...string) ([]string, error) {
	reply, err := roundTrip(addr, args...)
	if err != nil {
		return nil, err
	}
	if list, ok := reply.([]string); ok {
		return list, nil
	}
	return []string{reply.(string)}, nil
}

// roundTrip sends one command and returns its reply: a string, or a []string for an array (nested
// arrays flattened, nil elements as "").
func roundTrip(addr string, args ...string) (any, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second) // a loaded machine may take seconds to accept
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return nil, err
	}
	r := bufio.NewReader(c)
	first, err := readReply(r)
	if err != nil {
		return nil, err
	}
	if first.n < 0 {
		return first.s, nil
	}
	var list []string
	if err := readElements(r, first.n, &list); err != nil {
		return nil, err
	}
	return list, nil
}

// reply is one RESP value: s for a scalar, or n >= 0 elements of an array still to be read.
type reply struct {
	s string
	n int
}

// readReply reads one scalar, or the header of an array (n its length; an empty or nil array is n 0).
func readReply(r *bufio.Reader) (reply, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return reply{}, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return reply{}, errors.New("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return reply{s: line[1:], n: -1}, nil
	case '-':
		return reply{}, errors.New(line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return reply{}, fmt.Errorf("unexpected reply %q", line)
		}
		if n < 0 {
			return reply{n: -1}, nil // nil bulk string
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return reply{}, err
		}
		return reply{s: string(buf[:n]), n: -1}, nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return reply{}, fmt.Errorf("unexpected reply %q", line)
		}
		return reply{n: max(n, 0)}, nil
	default:
		return reply{}, fmt.Errorf("unexpected reply %q", line)
	}
}

// readElements appends n array elements to list, flattening nested arrays.
func readElements(r *bufio.Reader, n int, list *[]string) error {
	for range n {
		e, err := readReply(r)
		if err != nil {
			return err
		}
		if e.n < 0 {
			*list = append(*list, e.s)
			continue
		}
		if err := readElements(r, e.n, list); err != nil {
			return err
		}
	}
	return nil
}

// tail returns the last lines of a log, enough to say why a server did not start.
func tail(log []byte) string {
	lines := strings.Split(strings.TrimSpace(string(log)), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], "\n")
}
