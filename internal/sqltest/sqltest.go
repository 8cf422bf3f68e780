// Package sqltest starts real database servers for tests that kill, pause or restart them: a
// PostgreSQL (initdb, then postgres) or a MariaDB (mariadb-install-db, then mariadbd), each on a free
// loopback port in a temporary directory of its own, killed when the test ends. The machine's own servers (5432,
// 3306) are never touched.
//
// Kill, Pause and Resume signal the server and every process it forked (found through /proc, so this
// package is for Linux). When the binaries are missing the test is skipped, or fails under CI=true,
// with a message saying how to get them (make deps installs them).
package sqltest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds how long a server may take to accept connections after it was started. It only
// catches a server that never comes up: a loaded machine may take many seconds.
const startTimeout = 2 * time.Minute

// Server is one database server process owned by a test.
type Server struct {
	t     testing.TB
	kind  string // "postgres" or "mariadb"
	dir   string
	port  int
	argv  []string // the server's command line, kept for Restart
	ready []string // a command that succeeds once the server accepts connections

	cred *syscall.Credential // the server's user, when this process is root

	mu   sync.Mutex
	cmd  *exec.Cmd     // nil while stopped
	done chan struct{} // closed when cmd has exited
}

// unavailable skips t, or fails it under CI=true.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// find finds a program on PATH or in the given directories' patterns.
func find(name string, globs ...string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, g := range globs {
		if m, _ := filepath.Glob(g); len(m) > 0 {
			return m[len(m)-1], nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

// asUser returns the credential that runs a program as name when this process is root (PostgreSQL
// refuses to run as root), after giving name the directory; nil otherwise. The server is started with
// it directly (not through runuser, which starts a session of its own, out of the server's process
// group).
func asUser(t testing.TB, name, dir string) *syscall.Credential {
	t.Helper()
	u, err := user.Current()
	if err != nil || u.Uid != "0" {
		return nil
	}
	pu, err := user.Lookup(name)
	if err != nil {
		unavailable(t, "running as root and there is no %s user to run the server as", name)
	}
	if out, err := exec.Command("chown", "-R", name, dir).CombinedOutput(); err != nil {
		t.Fatalf("chown %s: %v: %s", dir, err, out)
	}
	uid, _ := strconv.Atoi(pu.Uid)
	gid, _ := strconv.Atoi(pu.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

// tempDir is a directory of the test's, reachable by the server's user: t.TempDir()'s parent is
// private to this process's user.
func tempDir(t testing.TB, kind string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "stampede-"+kind+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func run(t testing.TB, cred *syscall.Credential, args ...string) {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
}

// StartPostgres starts a PostgreSQL server (trust authentication, user postgres, database postgres)
// and returns once it accepts connections.
func StartPostgres(t testing.TB) *Server {
	t.Helper()
	glob := "/usr/lib/postgresql/*/bin/"
	initdb, err1 := find("initdb", glob+"initdb")
	postgres, err2 := find("postgres", glob+"postgres")
	isready, err3 := find("pg_isready", glob+"pg_isready")
	if err := errors.Join(err1, err2, err3); err != nil {
		unavailable(t, "PostgreSQL server binaries: %v (install postgresql, or run make deps)", err)
	}
	dir := tempDir(t, "pg")
	cred := asUser(t, "postgres", dir)
	data := filepath.Join(dir, "data")
	run(t, cred, initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
	s := &Server{t: t, kind: "postgres", dir: dir, port: freePort(t), cred: cred}
	p := strconv.Itoa(s.port)
	s.argv = append([]string{}, postgres, "-D", data, "-p", p, "-k", dir, "-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off", "-c", "max_connections=200")
	s.ready = []string{isready, "-q", "-h", "127.0.0.1", "-p", p, "-U", "postgres"}
	t.Cleanup(s.Kill)
	s.Restart()
	return s
}

// URL returns the PostgreSQL server's connection URL (database postgres); it stays the same across
// Restart.
func (s *Server) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=5", s.port)
}

// StartMariaDB starts a MariaDB server (no grant tables: any user, no password; database test) and
// returns once it accepts connections.
func StartMariaDB(t testing.TB) *Server {
	t.Helper()
	install, err1 := find("mariadb-install-db")
	mariadbd, err2 := find("mariadbd", "/usr/sbin/mariadbd")
	client, err3 := find("mariadb")
	if err := errors.Join(err1, err2, err3); err != nil {
		unavailable(t, "MariaDB server binaries: %v (install mariadb-server, or run make deps)", err)
	}
	dir := tempDir(t, "mariadb")
	root := asUser(t, "mysql", dir) != nil
	data := filepath.Join(dir, "data")
	userArg := "--user=mysql" // mariadbd starts as root and switches to it
	if !root {
		u, _ := user.Current()
		userArg = "--user=" + u.Username
	}
	run(t, nil, install, "--no-defaults", "--datadir="+data, userArg, "--auth-root-authentication-method=normal", "--skip-test-db")
	if root {
		run(t, nil, "chown", "-R", "mysql", dir)
	}
	s := &Server{t: t, kind: "mariadb", dir: dir, port: freePort(t)}
	p := strconv.Itoa(s.port)
	s.argv = []string{mariadbd, "--no-defaults", "--datadir=" + data, "--port=" + p, "--bind-address=127.0.0.1",
		"--socket=" + filepath.Join(dir, "sock"), "--pid-file=" + filepath.Join(dir, "pid"), userArg,
		"--skip-grant-tables", "--skip-log-bin", "--innodb-buffer-pool-size=64M", "--innodb-flush-log-at-trx-commit=0"}
	s.ready = []string{client, "--protocol=tcp", "-h", "127.0.0.1", "-P", p, "-uroot", "-e", "CREATE DATABASE IF NOT EXISTS test"}
	t.Cleanup(s.Kill)
	s.Restart()
	return s
}

// DSN returns the MariaDB server's go-sql-driver DSN (database test); it stays the same across Restart.
func (s *Server) DSN() string {
	return fmt.Sprintf("root@tcp(127.0.0.1:%d)/test?timeout=5s", s.port)
}

// Port returns the server's TCP port.
func (s *Server) Port() int { return s.port }

// Restart starts the server (again, on the same port and data) and returns once it accepts
// connections. After Kill, the server recovers its data as after a crash.
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.t.Fatal("sqltest: Restart of a running server")
	}
	log, err := os.Create(filepath.Join(s.dir, s.kind+".log"))
	if err != nil {
		s.t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(s.argv[0], s.argv[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: s.cred}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", s.kind, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
	deadline := time.Now().Add(startTimeout)
	for {
		if exec.Command(s.ready[0], s.ready[1:]...).Run() == nil {
			return
		}
		select {
		case <-done:
			out, _ := os.ReadFile(filepath.Join(s.dir, s.kind+".log"))
			s.t.Fatalf("%s exited at start:\n%s", s.kind, out)
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s did not accept connections within %v", s.kind, startTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// signal sends sig to the server and every process it forked. The server starts in a process group of
// its own, but PostgreSQL's postmaster starts a session (and so a group) of its own too, so the
// processes are found by their parents in /proc.
func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	for _, pid := range tree(s.cmd.Process.Pid) {
		_ = syscall.Kill(pid, sig)
	}
}

// tree returns pid and its descendants, parents first.
func tree(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses, so parse after the last ')'.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 {
			continue
		}
		if pp, err := strconv.Atoi(f[1]); err == nil {
			children[pp] = append(children[pp], p)
		}
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// Kill kills the server and every process it forked (SIGKILL: a crash, no clean shutdown) and waits
// for it to exit. Killing a stopped server does nothing.
func (s *Server) Kill() {
	s.signal(syscall.SIGKILL)
	s.signal(syscall.SIGCONT) // a stopped process dies of SIGKILL too; this only hurries what is left
	s.mu.Lock()
	done := s.done
	s.cmd, s.done = nil, nil
	s.mu.Unlock()
	if done != nil {
		<-done
	}
	// The port is free once no process of the group listens on it any more.
	for deadline := time.Now().Add(startTimeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)), 100*time.Millisecond)
		if err != nil {
			return
		}
		_ = c.Close()
	}
}

// Pause stops the server's processes (SIGSTOP): connections stay open and nothing answers.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }
