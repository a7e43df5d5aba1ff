// Package pgtest runs a throwaway PostgreSQL cluster for tests: initdb and
// pg_ctl in a temporary directory, on a free loopback port, trusting local
// connections. PostgreSQL refuses to run as root, so when the test runs as
// root (CI does) the cluster runs as the unprivileged user nobody.
package pgtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Cluster is one running PostgreSQL server.
type Cluster struct {
	t       testing.TB
	bin     string // directory of initdb and pg_ctl
	Dir     string // the data directory
	Port    int
	asUser  string // "" runs as the current user
	mu      sync.Mutex
	stopped bool
}

// binDir finds initdb and pg_ctl: on the PATH, in /usr/local/bin, or in
// Debian's /usr/lib/postgresql/<version>/bin.
func binDir() string {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if _, err := os.Stat(filepath.Join(filepath.Dir(p), "initdb")); err == nil {
			return filepath.Dir(p)
		}
	}
	dirs := []string{"/usr/local/bin", "/usr/local/pgsql/bin"}
	debian, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// The newest version last in the glob's order; prefer it.
	for i := len(debian) - 1; i >= 0; i-- {
		dirs = append(dirs, debian[i])
	}
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
				return d
			}
		}
	}
	return ""
}

// Start initialises and starts a cluster; it is stopped when the test
// ends. Without PostgreSQL's binaries it skips the test, or fails it when
// CI is set (scripts/test installs them).
func Start(t testing.TB) *Cluster {
	t.Helper()
	bin := binDir()
	if bin == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("PostgreSQL (initdb, pg_ctl) is not installed; scripts/test installs it")
		}
		t.Skip("PostgreSQL (initdb, pg_ctl) is not installed; run scripts/test, which installs it")
	}
	// Not t.TempDir: its parents are private to the test's user, and the
	// server may run as another one.
	base, err := os.MkdirTemp("", "sterigate-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	c := &Cluster{t: t, bin: bin, Dir: filepath.Join(base, "data"), Port: freePort(t)}
	if os.Geteuid() == 0 {
		c.asUser = "nobody"
		u, err := user.Lookup(c.asUser)
		if err != nil {
			t.Fatalf("running as root, PostgreSQL needs an unprivileged user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chmod(base, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(base, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	c.run("initdb", "-D", c.Dir, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C")
	conf := fmt.Sprintf("\nlisten_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\nmax_connections = 50\n", c.Port, base)
	f, err := os.OpenFile(filepath.Join(c.Dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(conf)
	f.Close()
	c.Start()
	t.Cleanup(func() { c.Stop("immediate") })
	return c
}

func (c *Cluster) run(tool string, args ...string) {
	c.t.Helper()
	path := filepath.Join(c.bin, tool)
	var cmd *exec.Cmd
	if c.asUser != "" {
		cmd = exec.Command("runuser", append([]string{"-u", c.asUser, "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = filepath.Dir(c.Dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		c.t.Fatalf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, out)
	}
}

// Start starts the server (again) and waits until it accepts connections.
func (c *Cluster) Start() {
	c.t.Helper()
	c.run("pg_ctl", "-D", c.Dir, "-w", "-t", "60", "-l", filepath.Join(filepath.Dir(c.Dir), "server.log"), "start")
	c.mu.Lock()
	c.stopped = false
	c.mu.Unlock()
}

// Stop stops the server with a pg_ctl shutdown mode: "fast" (clean) or
// "immediate" (as a crash: recovery runs at the next start).
func (c *Cluster) Stop(mode string) {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	c.stopped = true
	c.mu.Unlock()
	c.run("pg_ctl", "-D", c.Dir, "-w", "-m", mode, "stop")
}

// URL is a connection URL for the cluster's postgres database.
func (c *Cluster) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.Port)
}

// Log returns the server's log, for a failure message.
func (c *Cluster) Log() string {
	b, _ := os.ReadFile(filepath.Join(filepath.Dir(c.Dir), "server.log"))
	return string(b)
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// WaitReady polls until the server accepts TCP connections, for a test
// that restarted it in the background.
func (c *Cluster) WaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", c.Port), 200*time.Millisecond)
		if err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}
