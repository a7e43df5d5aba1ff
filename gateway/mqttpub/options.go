package mqttpub

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/sterigate/sterigate/gateway/config"
	"github.com/sterigate/sterigate/gateway/journal"
	"github.com/sterigate/sterigate/protocol"
)

// Options configures a Publisher. Zero durations and sizes take the
// defaults named on each field.
type Options struct {
	// Brokers are tried in order; after a failed or lost connection the
	// next one is tried (failover). Schemes: tcp, mqtt, ssl, tls, mqtts, tcps.
	Brokers []string
	// ClientID is fixed across reconnects (default "sterigate-<Gateway>").
	ClientID  string
	Gateway   string
	Site      string
	TopicRoot string
	// Version goes into the gateway status payload.
	Version string

	Username string
	// Password is used as is; prefer PasswordFile or PasswordEnv so the
	// secret is not in the configuration file. At most one of the three.
	Password     string
	PasswordFile string
	PasswordEnv  string

	// CAFile verifies the broker's certificate (PEM); empty uses the
	// system roots. CertFile and KeyFile enable mutual TLS.
	CAFile, CertFile, KeyFile string

	KeepAlive      time.Duration // default 20 s; at most 30 s
	WriteTimeout   time.Duration // default 10 s
	ConnectTimeout time.Duration // default 10 s
	// AckTimeout bounds the wait for one PUBACK (default 30 s); a
	// timeout drops the connection and restarts from the oldest
	// undelivered entry.
	AckTimeout time.Duration
	// ConfirmTimeout is how long an acknowledged cycle record or event may
	// take to come back on the gateway's own subscription (default 30 s);
	// past it the mqtt_unconfirmed alarm is raised and the entry is
	// published again, with back-off, until it comes back.
	ConfirmTimeout time.Duration
	// Receipts is ReceiptsOff (default), ReceiptsExpected or
	// ReceiptsRequired (receipts.go, docs/fleet.md).
	Receipts string
	// ReceiptsAlarmAfter raises AlarmReceiptsMissing once the oldest
	// unarchived entry is older (default 1 h).
	ReceiptsAlarmAfter time.Duration
	// ReceiptsRepublishAfter: with ReceiptsRequired, a delivered entry
	// still unarchived this long after it was delivered is published again
	// (default 15 min).
	ReceiptsRepublishAfter time.Duration

	// Window is how many publishes may wait for their PUBACK (default 32).
	Window int
	// ReadBatch is how many entries are read from the journal at once
	// (default 256).
	ReadBatch int
	// MinBackoff and MaxBackoff bound the reconnect delay (defaults 500 ms
	// and 30 s); it doubles per failed attempt, with jitter.
	MinBackoff, MaxBackoff time.Duration
	// ReplayRate paces the telemetry backlog in messages per second
	// (default 5000; negative: unpaced). Cycle records, events and live
	// telemetry are never paced.
	ReplayRate float64
	// AckFlushInterval batches MarkDelivered (default 100 ms, or 500 ids).
	AckFlushInterval time.Duration

	// KeyMessage is the payload of the gateway's retained key topic (an
	// evidence.KeyMessage, docs/mqtt.md), published at every connect so
	// receivers can check signatures; nil publishes none.
	KeyMessage []byte

	// OnDelivered is called, in the publisher's goroutine, for every entry
	// after it was marked delivered. It must not block.
	OnDelivered func(journal.Entry)
	Logger      *slog.Logger
}

var brokerSchemes = map[string]bool{"tcp": true, "mqtt": true, "ssl": true, "tls": true, "mqtts": true, "tcps": true}

func isTLSScheme(s string) bool { return s == "ssl" || s == "tls" || s == "mqtts" || s == "tcps" }

// withDefaults validates o and fills defaults. Errors name the field.
func (o Options) withDefaults() (Options, error) {
	if len(o.Brokers) == 0 {
		return o, fmt.Errorf("mqtt: brokers: at least one broker URL is required")
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return o, fmt.Errorf("mqtt: client certificate %q and key %q: both or neither must be set", o.CertFile, o.KeyFile)
	}
	tlsFiles := o.CAFile != "" || o.CertFile != "" || o.KeyFile != ""
	for i, b := range o.Brokers {
		if err := config.CheckBrokerURLHasNoCredentials(b); err != nil {
			return o, fmt.Errorf("mqtt: brokers[%d] %w", i, err)
		}
		u, err := url.Parse(b)
		if err != nil {
			return o, fmt.Errorf("mqtt: brokers[%d] %q is not a URL", i, b)
		}
		if !brokerSchemes[u.Scheme] {
			return o, fmt.Errorf("mqtt: brokers[%d] %q: scheme %q is not one of tcp, mqtt, ssl, tls, mqtts, tcps", i, b, u.Scheme)
		}
		if u.Port() == "" {
			return o, fmt.Errorf("mqtt: brokers[%d] %q: no port", i, b)
		}
		if tlsFiles && !isTLSScheme(u.Scheme) {
			return o, fmt.Errorf("mqtt: brokers[%d] %q: TLS files are set but the scheme %q is plain TCP; use ssl://", i, b, u.Scheme)
		}
	}
	for what, v := range map[string]string{"gateway id": o.Gateway, "site": o.Site, "topic_root": o.TopicRoot} {
		if err := protocol.CheckTopicLevel("mqtt: "+what, v); err != nil {
			return o, err
		}
	}
	n := 0
	for _, s := range []string{o.Password, o.PasswordFile, o.PasswordEnv} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		return o, fmt.Errorf("mqtt: set only one of password, password_file and password_env")
	}
	if o.ClientID == "" {
		o.ClientID = "sterigate-" + o.Gateway
	}
	if o.KeepAlive == 0 {
		o.KeepAlive = 20 * time.Second
	}
	if o.KeepAlive < time.Second || o.KeepAlive > 30*time.Second {
		return o, fmt.Errorf("mqtt: keepalive %s must be between 1s and 30s so a dead link is noticed quickly", o.KeepAlive)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.WriteTimeout, 10*time.Second)
	def(&o.ConnectTimeout, 10*time.Second)
	def(&o.AckTimeout, 30*time.Second)
	def(&o.ConfirmTimeout, 30*time.Second)
	def(&o.ReceiptsAlarmAfter, config.DefaultReceiptsAlarmAfter)
	def(&o.ReceiptsRepublishAfter, config.DefaultReceiptsRepublishAfter)
	switch o.Receipts {
	case "":
		o.Receipts = ReceiptsOff
	case ReceiptsOff, ReceiptsExpected, ReceiptsRequired:
	default:
		return o, fmt.Errorf("mqtt: receipts %q is not one of off, expected, required", o.Receipts)
	}
	def(&o.MinBackoff, 500*time.Millisecond)
	def(&o.MaxBackoff, 30*time.Second)
	def(&o.AckFlushInterval, 100*time.Millisecond)
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	if o.Window <= 0 {
		o.Window = 32
	}
	if o.Window > 65000 {
		return o, fmt.Errorf("mqtt: window %d exceeds MQTT's 65535 packet ids", o.Window)
	}
	if o.ReadBatch <= 0 {
		o.ReadBatch = 256
	}
	if o.ReplayRate == 0 {
		o.ReplayRate = 5000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// FileError is a secret or TLS file (or variable) that cannot be used.
// Key names the config key under mqtt (password_file, password_env,
// tls.ca_file, tls.cert_file), so a caller can point at its line.
type FileError struct {
	Key string
	Err error
}

func (e *FileError) Error() string { return "mqtt: " + e.Key + ": " + e.Err.Error() }
func (e *FileError) Unwrap() error { return e.Err }

// password resolves the configured secret. The value is never logged.
func (o Options) password() (string, error) {
	switch {
	case o.PasswordFile != "":
		b, err := os.ReadFile(o.PasswordFile)
		if err != nil {
			return "", &FileError{"password_file", err}
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	case o.PasswordEnv != "":
		v, ok := os.LookupEnv(o.PasswordEnv)
		if !ok {
			return "", &FileError{"password_env", fmt.Errorf("environment variable %q is not set", o.PasswordEnv)}
		}
		return v, nil
	}
	return o.Password, nil
}

// tlsConfig builds the TLS settings, or nil when no TLS file is set (a
// tls:// broker then uses the system roots).
func (o Options) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, &FileError{"tls.ca_file", err}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &FileError{"tls.ca_file", fmt.Errorf("%q holds no PEM certificate", o.CAFile)}
		}
		cfg.RootCAs = pool
	}
	if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, &FileError{"tls.cert_file", fmt.Errorf("client certificate %q / key %q: %w", o.CertFile, o.KeyFile, err)}
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
