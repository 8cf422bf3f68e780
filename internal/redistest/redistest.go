// Package redistest starts real redis-server processes for tests: a single server on a free loopback
// port that can be stopped, restarted on the same port and paused, or a Redis Cluster of N masters.
//
// Every server lives in its own t.TempDir(), persists nothing (--save "" --appendonly no) and is killed
// by t.Cleanup. The system redis-server (port 6379) is never used or touched.
//
// When redis-server (or redis-cli, for a cluster) is not on PATH the test is skipped, or fails under
// CI=true, with a message saying how to get it.
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
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed-a1426414/stampede/internal/redisinfo"
)

// startTimeout bounds how long a server may take to answer PING after it was started, a port to close
// after a kill, and a cluster to agree. It only catches a server that never comes up: a loaded 2-core
// machine may take seconds for what takes milliseconds on a quiet one.
const startTimeout = time.Minute

// Server is one redis-server process owned by a test.
type Server struct {
	t    testing.TB
	port int
	dir  string
	args []string // extra redis-server arguments, kept for Restart

	mu   sync.Mutex    // guards proc and done
	proc *os.Process   // nil while stopped
	done chan struct{} // closed when proc has exited and been reaped
}

// Start starts a redis-server on a free loopback port and returns once it answers PING. The server is
// killed when the test ends. Extra arguments are passed to redis-server after the defaults.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	requireBinary(t, "redis-server")
	s := &Server{t: t, dir: t.TempDir(), args: args}
	t.Cleanup(s.Stop)
	s.startOnFreePort()
	return s
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
// bulk string). It needs no go-redis client, so it works while clients under test are misbehaving.
func (s *Server) Do(args ...string) (string, error) { return do(s.Addr(), args...) }

// CommandCalls returns how many times the server ran cmd (a command name such as "get" or "mget", any
// case) according to INFO commandstats: 0 before its first call. Its errors end the test through tb.
func (s *Server) CommandCalls(tb testing.TB, cmd string) int {
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
func (s *Server) Freeze() { s.t.Helper(); s.signal("freeze", sigStop) }

// Thaw resumes a server stopped by Freeze; it answers the commands buffered meanwhile.
func (s *Server) Thaw() { s.t.Helper(); s.signal("thaw", sigCont) }

func (s *Server) signal(what string, sig os.Signal) {
	s.t.Helper()
	if sig == nil {
		s.t.Skipf("redistest: %s needs SIGSTOP and SIGCONT (a Unix system)", what)
	}
	s.mu.Lock()
	proc := s.proc
	s.mu.Unlock()
	if proc == nil {
		s.t.Fatalf("redistest: %s on port %d: the server is not running", what, s.port)
	}
	if err := proc.Signal(sig); err != nil {
		s.t.Fatalf("redistest: %s on port %d: %v", what, s.port, err)
	}
}

// Stop kills the server (SIGKILL: no shutdown work, like a crash) and returns once the process is gone
// and its port refuses connections. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.t.Helper()
	s.mu.Lock()
	proc, done := s.proc, s.done
	s.proc = nil
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
	args := append([]string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--logfile", logPath,
	}, s.args...)
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
func freePort(t testing.TB) int {
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
func requireBinary(t testing.TB, name string) {
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

// do sends one RESP command on a new connection and reads one reply.
func do(addr string, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", errors.New(line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", fmt.Errorf("unexpected reply %q", line)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	default:
		return "", fmt.Errorf("unexpected reply %q", line)
	}
}

// tail returns the last lines of a log, enough to say why a server did not start.
func tail(log []byte) string {
	lines := strings.Split(strings.TrimSpace(string(log)), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], "\n")
}
