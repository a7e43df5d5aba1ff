// Package pgtest runs a throwaway PostgreSQL cluster for tests: initdb and
// pg_ctl in a temporary directory, on a free loopback port, trusting local
// connections. PostgreSQL refuses to run as root, so when the test runs as
// root (CI does) the cluster runs as the unprivileged user nobody.
package pgtest

import (
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
	"testing"
)

// Cluster is one running PostgreSQL server.
type Cluster struct {
	t       testing.TB // nil for a cluster New made (shared by a TestMain)
	base    string     // the temporary directory holding everything
	bin     string     // directory of initdb and pg_ctl
	Dir     string     // the data directory
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

// ErrNotInstalled is returned by New when initdb and pg_ctl are not found.
var ErrNotInstalled = errors.New("PostgreSQL (initdb, pg_ctl) is not installed; scripts/test installs it")

// Start initialises and starts a cluster; it is stopped when the test
// ends. Without PostgreSQL's binaries it skips the test, or fails it when
// CI is set (scripts/test installs them).
func Start(t testing.TB) *Cluster {
	t.Helper()
	c, err := New()
	if errors.Is(err, ErrNotInstalled) {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	c.t = t
	t.Cleanup(c.Close)
	return c
}

// New initialises and starts a cluster, for a TestMain that shares one
// between tests; Close stops it and removes its files.
func New() (*Cluster, error) {
	bin := binDir()
	if bin == "" {
		return nil, ErrNotInstalled
	}
	// Not t.TempDir: its parents are private to the test's user, and the
	// server may run as another one.
	base, err := os.MkdirTemp("", "sterigate-pg-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(base)
		return nil, err
	}
	c := &Cluster{base: base, bin: bin, Dir: filepath.Join(base, "data"), Port: port}
	if err := c.init(); err != nil {
		os.RemoveAll(base)
		return nil, err
	}
	return c, nil
}

func (c *Cluster) init() error {
	if os.Geteuid() == 0 {
		c.asUser = "nobody"
		u, err := user.Lookup(c.asUser)
		if err != nil {
			return fmt.Errorf("running as root, PostgreSQL needs an unprivileged user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chmod(c.base, 0o755); err != nil {
			return err
		}
		if err := os.Chown(c.base, uid, gid); err != nil {
			return err
		}
	}
	if err := c.run("initdb", "-D", c.Dir, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"); err != nil {
		return err
	}
	conf := fmt.Sprintf("\nlisten_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\nmax_connections = 100\n", c.Port, c.base)
	f, err := os.OpenFile(filepath.Join(c.Dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	f.WriteString(conf)
	f.Close()
	return c.start()
}

func (c *Cluster) run(tool string, args ...string) error {
	path := filepath.Join(c.bin, tool)
	var cmd *exec.Cmd
	if c.asUser != "" {
		cmd = exec.Command("runuser", append([]string{"-u", c.asUser, "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = c.base
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, out)
	}
	return nil
}

func (c *Cluster) start() error {
	if err := c.run("pg_ctl", "-D", c.Dir, "-w", "-t", "60", "-l", filepath.Join(c.base, "server.log"), "start"); err != nil {
		return err
	}
	c.mu.Lock()
	c.stopped = false
	c.mu.Unlock()
	return nil
}

// Start starts the server again after Stop and waits until it accepts
// connections.
func (c *Cluster) Start() {
	if err := c.start(); err != nil {
		c.fail(err)
	}
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
	if err := c.run("pg_ctl", "-D", c.Dir, "-w", "-m", mode, "stop"); err != nil {
		c.fail(err)
	}
}

// fail ends the test that started the cluster; a shared cluster's caller
// has no test to end, and cannot go on.
func (c *Cluster) fail(err error) {
	if c.t != nil {
		c.t.Helper()
		c.t.Fatal(err)
	}
	panic(err)
}

// Close stops the server and removes its files.
func (c *Cluster) Close() {
	c.mu.Lock()
	stopped := c.stopped
	c.stopped = true
	c.mu.Unlock()
	if !stopped {
		c.run("pg_ctl", "-D", c.Dir, "-w", "-m", "immediate", "stop")
	}
	os.RemoveAll(c.base)
}

// URL is a connection URL for the cluster's postgres database.
func (c *Cluster) URL() string { return c.DatabaseURL("postgres") }

// DatabaseURL is a connection URL for database name.
func (c *Cluster) DatabaseURL(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, name)
}

// Log returns the server's log, for a failure message.
func (c *Cluster) Log() string {
	b, _ := os.ReadFile(filepath.Join(c.base, "server.log"))
	return string(b)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
