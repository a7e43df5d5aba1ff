// Package brokertest runs a real Mosquitto for tests with the broker
// configuration sterigate ships (deploy/mosquitto.conf, its ACL), adapted
// to the test's port and directory, with throwaway TLS certificates and
// users: the tests exercise what a hospital installs, not a permissive
// stand-in.
package brokertest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// PKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files, and a second, unrelated CA with a
// client certificate of its own.
type PKI struct {
	Dir                             string
	CAFile, ServerCert, ServerKey   string
	ClientCert, ClientKey, OtherCA  string
	RogueClientCert, RogueClientKey string
}

// NewPKI writes a fresh PKI into a temporary directory.
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	dir := t.TempDir()
	p := &PKI{Dir: dir}
	caKey, caCert, caDER := makeCA(t, "sterigate test CA")
	p.CAFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)
	p.ServerCert, p.ServerKey = makeLeaf(t, dir, "server", caCert, caKey, true)
	p.ClientCert, p.ClientKey = makeLeaf(t, dir, "client", caCert, caKey, false)
	rogueKey, rogueCert, rogueDER := makeCA(t, "rogue CA")
	p.OtherCA = writePEM(t, dir, "rogue-ca.pem", "CERTIFICATE", rogueDER)
	p.RogueClientCert, p.RogueClientKey = makeLeaf(t, dir, "rogue-client", rogueCert, rogueKey, false)
	return p
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		panic(err)
	}
	return n
}

func makeCA(t testing.TB, name string) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return key, cert, der
}

func makeLeaf(t testing.TB, dir, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, server bool) (certFile, keyFile string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, dir, name+".pem", "CERTIFICATE", der), writePEM(t, dir, name+".key", "EC PRIVATE KEY", keyDER)
}

func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Binary returns the mosquitto binary, or skips the test (fails it on CI).
func Binary(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"mosquitto", "/usr/sbin/mosquitto"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("mosquitto is not installed; scripts/test installs it")
	}
	t.Skip("mosquitto is not installed; run scripts/test, which installs it")
	return ""
}

// RepoFile returns the path of a file of the repository (e.g.
// "deploy/mosquitto.conf").
func RepoFile(name string) string {
	_, here, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(here), "..", "..", "..", name)
}

// Users writes a Mosquitto password file for users (name → password)
// with mosquitto_passwd.
func Users(t testing.TB, dir string, users map[string]string) string {
	t.Helper()
	tool, err := exec.LookPath("mosquitto_passwd")
	if err != nil {
		t.Skip("mosquitto_passwd is not installed (package mosquitto)")
	}
	path := filepath.Join(dir, "passwd")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, pw := range users {
		if out, err := exec.Command(tool, "-b", path, name, pw).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd %s: %v\n%s", name, err, out)
		}
	}
	return path
}

// Setup is what the shipped configuration is adapted with.
type Setup struct {
	PKI *PKI
	// Users are the broker's users (name → password).
	Users map[string]string
	// ACL is the ACL file's text; empty takes deploy/mosquitto.acl.
	ACL string
	// Conf is the configuration to adapt; empty takes deploy/mosquitto.conf.
	Conf string
}

// Broker is a Mosquitto process on a loopback port.
type Broker struct {
	t                 testing.TB
	Dir               string
	ConfPath, ACLPath string
	Port              int
	mu                sync.Mutex
	cmd               *exec.Cmd
	log               *bytes.Buffer
	done              chan struct{}
}

var (
	reListener = regexp.MustCompile(`(?m)^listener\s+\d+.*$`)
	reKey      = func(key string) *regexp.Regexp { return regexp.MustCompile(`(?m)^` + key + `\s+.*$`) }
)

// StartShipped starts Mosquitto with deploy/mosquitto.conf: its listener
// on a free loopback port, its persistence, password file, ACL and
// certificates in the test's directory, and everything else as shipped.
func StartShipped(t testing.TB, s Setup) *Broker {
	t.Helper()
	Binary(t)
	dir := t.TempDir()
	conf := s.Conf
	if conf == "" {
		b, err := os.ReadFile(RepoFile("deploy/mosquitto.conf"))
		if err != nil {
			t.Fatal(err)
		}
		conf = string(b)
	}
	acl := s.ACL
	if acl == "" {
		b, err := os.ReadFile(RepoFile("deploy/mosquitto.acl"))
		if err != nil {
			t.Fatal(err)
		}
		acl = string(b)
	}
	b := &Broker{t: t, Dir: dir, Port: FreePort(t), ConfPath: filepath.Join(dir, "mosquitto.conf"), ACLPath: filepath.Join(dir, "acl")}
	if err := os.WriteFile(b.ACLPath, []byte(acl), 0o600); err != nil {
		t.Fatal(err)
	}
	passwd := Users(t, dir, s.Users)
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	set := func(key, value string) {
		re := reKey(key)
		if !re.MatchString(conf) {
			t.Fatalf("the shipped mosquitto.conf has no %s line", key)
		}
		conf = re.ReplaceAllLiteralString(conf, key+" "+value)
	}
	conf = reListener.ReplaceAllLiteralString(conf, fmt.Sprintf("listener %d 127.0.0.1", b.Port))
	set("persistence_location", dir+"/")
	set("password_file", passwd)
	set("acl_file", b.ACLPath)
	if s.PKI != nil {
		set("certfile", s.PKI.ServerCert)
		set("keyfile", s.PKI.ServerKey)
		set("cafile", s.PKI.CAFile)
	}
	set("log_dest", "stderr")

	// As root Mosquitto would switch to its own user, which cannot write
	// the test's directory.
	conf += fmt.Sprintf("\nuser %s\n", me.Username)
	b.run(conf)
	return b
}

// Start starts Mosquitto with the configuration conf returns for a free
// loopback port and the test's directory (for a test that needs another
// configuration than the shipped one).
func Start(t testing.TB, conf func(port int, dir string) string) *Broker {
	t.Helper()
	Binary(t)
	dir := t.TempDir()
	b := &Broker{t: t, Dir: dir, Port: FreePort(t), ConfPath: filepath.Join(dir, "mosquitto.conf")}
	b.run(conf(b.Port, dir))
	return b
}

func (b *Broker) run(conf string) {
	b.t.Helper()
	if err := os.WriteFile(b.ConfPath, []byte(conf), 0o600); err != nil {
		b.t.Fatal(err)
	}
	b.Start()
	b.t.Cleanup(func() { b.Stop(syscall.SIGKILL) })
}

// Trusting is a TLS client configuration that trusts the CA in caFile.
func Trusting(t testing.TB, caFile string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &tls.Config{RootCAs: pool}
}

// FreePort returns a loopback TCP port nothing listens on.
func FreePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Start (re)starts the process and waits until it listens.
func (b *Broker) Start() {
	b.t.Helper()
	b.mu.Lock()
	b.log = new(bytes.Buffer)
	b.cmd = exec.Command(Binary(b.t), "-c", b.ConfPath)
	b.cmd.Stdout, b.cmd.Stderr = syncWriter{&b.mu, b.log}, syncWriter{&b.mu, b.log}
	if err := b.cmd.Start(); err != nil {
		b.mu.Unlock()
		b.t.Fatal(err)
	}
	b.done = make(chan struct{})
	cmd, done := b.cmd, b.done
	b.mu.Unlock()
	go func() { cmd.Wait(); close(done) }()
	addr := fmt.Sprintf("127.0.0.1:%d", b.Port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-done:
			b.t.Fatalf("mosquitto exited: %s", b.Log())
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("mosquitto does not listen on %s: %s", addr, b.Log())
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

// Stop sends sig and waits for the process to end.
func (b *Broker) Stop(sig syscall.Signal) {
	b.mu.Lock()
	cmd, done := b.cmd, b.done
	b.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// SetACL rewrites the ACL file and makes Mosquitto reload it (SIGHUP).
func (b *Broker) SetACL(acl string) {
	b.t.Helper()
	if err := os.WriteFile(b.ACLPath, []byte(acl), 0o600); err != nil {
		b.t.Fatal(err)
	}
	b.mu.Lock()
	cmd := b.cmd
	b.mu.Unlock()
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		b.t.Fatal(err)
	}
}

// URL is the broker's URL with scheme (ssl for the shipped listener).
func (b *Broker) URL(scheme string) string { return fmt.Sprintf("%s://127.0.0.1:%d", scheme, b.Port) }

// Addr is host:port.
func (b *Broker) Addr() string { return fmt.Sprintf("127.0.0.1:%d", b.Port) }

// Log returns what Mosquitto printed.
func (b *Broker) Log() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.log.String()
}

// Conf returns the adapted configuration (for a test's failure message).
func (b *Broker) Conf() string {
	c, _ := os.ReadFile(b.ConfPath)
	return strings.TrimSpace(string(c))
}

type syncWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
