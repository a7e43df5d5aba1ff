// Package config reads and validates sterigate's YAML configuration file.
//
// Every mistake is reported with the file, line, key path and value
// (config.Error), all of them at once, so a commissioning engineer fixes a
// file in one pass. Defaults are filled in here, in one place, and are
// documented in docs/config.md.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/protocol/strictyaml"
	"github.com/sterigate/sterigate/protocol/verify"
)

// Config is the whole configuration of one gateway.
type Config struct {
	// File is the path the config was read from; profile and template
	// paths are relative to its directory.
	File    string
	Gateway Gateway
	MQTT    MQTT
	Devices []Device
	// lines maps key paths ("devices[0].profile") to their line, so
	// mistakes found later (a profile that does not load, a missing
	// password file) are reported on the line that names them.
	lines strictyaml.Lines
}

// Line returns the line of the key at path (e.g. "mqtt.password_file",
// "devices[2].profile"), or of its closest enclosing key present in the
// file; 0 when none is.
func (c *Config) Line(path string) int {
	return c.lines.Line(path)
}

// Errorf returns an Error about the key at path, on its line.
func (c *Config) Errorf(path, format string, args ...any) *Error {
	return &Error{File: c.File, Line: c.Line(path), Path: path, Msg: fmt.Sprintf(format, args...)}
}

// Gateway holds the gateway's identity and local storage.
type Gateway struct {
	ID      string
	Site    string
	DataDir string
	// Console is the listen address of the local console (overview,
	// cycle records, release decisions, /metrics); empty disables it.
	Console string
	// ConsoleAccess holds the console's accounts, TLS and sessions.
	ConsoleAccess ConsoleAccess
	Journal       Journal
	// Readiness sets when the console's /readyz says the gateway is not
	// ready.
	Readiness Readiness
	// SigningKey is the path of the private key that signs the journal;
	// empty: <DataDir>/signing.key (docs/evidence.md).
	SigningKey string
}

// ConsoleAccess configures who may use the console and how it is served.
type ConsoleAccess struct {
	// UsersFile is the accounts file ('sterigate user add'); relative to
	// the config file's directory. Empty: nobody can log in, no release
	// decision can be recorded.
	UsersFile string
	// TLSCertFile and TLSKeyFile serve the console over HTTPS.
	TLSCertFile string
	TLSKeyFile  string
	// TLSSelfSigned serves HTTPS with a certificate generated on first
	// start in the data directory.
	TLSSelfSigned bool
	// SessionIdle ends a login unused for that long (0: the console's
	// default, 30 min).
	SessionIdle time.Duration
	// TimeZone is the IANA zone times are shown in (empty: the system's).
	TimeZone string
}

// Readiness holds the limits of the console's /readyz.
type Readiness struct {
	// BrokerUnreachable: not ready once no broker has been reachable for
	// this long.
	BrokerUnreachable time.Duration
	// DeviceOffline: not ready once a device has not been online for this
	// long.
	DeviceOffline time.Duration
}

// Journal bounds the local journal.
type Journal struct {
	// Quota is the most disk the journal may use, in bytes; 0 is no limit.
	Quota int64
	// Retention is how long delivered entries are kept for local history.
	Retention time.Duration
}

// MQTT says where and how records are published.
type MQTT struct {
	Brokers      []string
	TopicRoot    string
	ClientID     string
	Username     string
	PasswordFile string
	PasswordEnv  string
	TLS          TLS
	KeepAlive    time.Duration
	Inflight     int
	// ConfirmTimeout is how long an acknowledged cycle record or event may
	// take to come back on the gateway's own subscription before it is
	// published again and an alarm raised.
	ConfirmTimeout time.Duration
	// Receipts says what the gateway does with an archive's receipts
	// (docs/fleet.md): ReceiptsOff ignores them, ReceiptsExpected marks
	// entries archived and raises an alarm when none come,
	// ReceiptsRequired also publishes again what stays unarchived and
	// prunes only archived entries.
	Receipts string
	// ReceiptsAlarmAfter raises the receipts_missing alarm once the oldest
	// unarchived entry is older (expected and required).
	ReceiptsAlarmAfter time.Duration
	// ReceiptsRepublishAfter is how long a delivered entry may stay
	// unarchived before it is published again (required).
	ReceiptsRepublishAfter time.Duration
}

// Values of mqtt.receipts.
const (
	ReceiptsOff      = "off"
	ReceiptsExpected = "expected"
	ReceiptsRequired = "required"
)

// TLS configures the broker connection's TLS; all paths empty means the
// system roots (for tls:// brokers) and no client certificate.
type TLS struct {
	CAFile   string
	CertFile string
	KeyFile  string
}

// Drivers a device may use.
const (
	DriverModbusTCP    = "modbus-tcp"
	DriverModbusRTU    = "modbus-rtu"
	DriverModbusRTUTCP = "modbus-rtu-tcp"
	DriverPrinter      = "printer"
)

var drivers = []string{DriverModbusTCP, DriverModbusRTU, DriverModbusRTUTCP, DriverPrinter}

// Device is one sterilizer and how to reach it.
type Device struct {
	ID     string
	Driver string
	// Address is host:port for modbus-tcp and modbus-rtu-tcp.
	Address string
	Unit    int
	// Profile names a built-in profile or a profile file (Modbus drivers).
	Profile      string
	PollInterval time.Duration
	Timeout      time.Duration
	// TimeScale is how many device seconds pass per wall-clock second:
	// 1 for a real device; a simulator run with --speed N is N (Modbus).
	// Records carry it so durations are judged in device time.
	TimeScale float64
	// PauseBetweenRequests is the extra silence kept on a shared RTU bus.
	PauseBetweenRequests time.Duration
	// OfflineAfter is how many consecutive failed polls make the device
	// offline (Modbus); 0 leaves the driver's default (3).
	OfflineAfter int
	Serial       Serial
	// Template names a built-in template or a template file (printer).
	Template string
	// ReportTimeout is the silence after which a printout without its end
	// line is taken as cut (printer); 0 leaves the driver's default.
	ReportTimeout time.Duration
	// Criteria are the site's overrides of the parametric criteria of the
	// device's programs, by program name (or, for a Modbus device, program
	// code) as written in the file: laid over the profile's criteria key by
	// key (docs/verification.md). Each is valid on its own; whether it
	// fits the profile is checked where the profile is loaded.
	Criteria map[string]verify.Params
	// Line is the config line the device starts at, for later errors.
	Line int
}

// Serial describes a serial port (modbus-rtu and printer drivers).
type Serial struct {
	Port     string
	Baud     int
	DataBits int
	Parity   string // none, even, odd
	StopBits int
	USB      USB
}

// USB identifies a USB serial adapter, so the port is found again when
// the device node changes after a replug.
type USB struct {
	VID, PID, Serial string
}

// unitUnset marks a device whose unit key is absent, so an explicit 0 can
// be told from a missing key.
const unitUnset = -1

// Defaults applied when a key is absent.
const (
	DefaultTopicRoot    = "sterigate"
	DefaultDataDir      = "./data"
	DefaultPollInterval = time.Second
	DefaultTimeout      = 2 * time.Second
	DefaultKeepAlive    = 30 * time.Second
	DefaultInflight     = 32
	// DefaultConfirmTimeout: a record that does not come back within it
	// is published again.
	DefaultConfirmTimeout = 30 * time.Second
	// An archive that has kept nothing for an hour is worth a look; an
	// entry unarchived for a quarter of an hour is sent again (a broker
	// restart or a denied topic lost it).
	DefaultReceiptsAlarmAfter     = time.Hour
	DefaultReceiptsRepublishAfter = 15 * time.Minute
	DefaultRetention              = 3650 * 24 * time.Hour // ten years of records
	// A broker outage of a minute is worth a look; a device needs longer:
	// a sterilizer switched off between cycles is offline on purpose.
	DefaultBrokerUnreachable = 60 * time.Second
	DefaultDeviceOffline     = 5 * time.Minute
	DefaultModbusBaud        = 19200
	DefaultPrinterBaud       = 9600
	// MaxReportTimeout bounds a printer's report_timeout: a device that
	// prints its report line by line as the cycle runs needs more than its
	// longest phase, and no cycle phase lasts a day.
	MaxReportTimeout = 24 * time.Hour
)

// Load reads and validates the config file at path.
func Load(path string) (*Config, error) {
	c, err := LoadPartial(path)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// LoadPartial is Load for 'sterigate check': when the file is YAML but has
// mistakes, it returns them together with what could be decoded (with
// defaults filled in), so that the profiles and files the config names
// can be checked in the same run. The Config is nil only when the file
// cannot be read or is not YAML.
func LoadPartial(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return parse(path, data)
}

// Parse validates data as the config file named file. It reports every
// error it finds, joined.
func Parse(file string, data []byte) (*Config, error) {
	c, err := parse(file, data)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// readRoot reads data as YAML and returns its top node; example names the
// example file an empty file is pointed to.
func readRoot(file string, data []byte, example string) (*yaml.Node, error) {
	root, syntax := strictyaml.Parse(data)
	if syntax != nil {
		return nil, &Error{File: file, Line: syntax.Line, Msg: syntax.Msg}
	}
	if root == nil {
		return nil, &Error{File: file, Msg: "the file is empty; see " + example}
	}
	return root, nil
}

func newDecoder() *decoder {
	return &decoder{Walker: &strictyaml.Walker{Lines: strictyaml.Lines{}}}
}

// finish turns the walk's problems into Errors, in file order, so the
// list reads top to bottom like the file.
func (d *decoder) finish(file string) error {
	if len(d.Problems) == 0 {
		return nil
	}
	var errs []error
	for _, p := range d.InFileOrder() {
		errs = append(errs, &Error{File: file, Line: p.Line, Path: p.Path, Msg: p.Msg})
	}
	return errors.Join(errs...)
}

func parse(file string, data []byte) (*Config, error) {
	root, err := readRoot(file, data, "sterigate.example.yaml")
	if err != nil {
		return nil, err
	}
	d := newDecoder()
	c := &Config{File: file, lines: d.Lines}
	d.Mapping(root, "",
		field{Key: "gateway", Decode: func(n *yaml.Node, p string) { d.gateway(n, p, &c.Gateway) }},
		field{Key: "mqtt", Decode: func(n *yaml.Node, p string) { d.mqtt(n, p, &c.MQTT) }},
		field{Key: "devices", Decode: func(n *yaml.Node, p string) {
			d.Sequence(n, p, func(_ int, item *yaml.Node, ip string) {
				dev := Device{Line: item.Line, Unit: unitUnset}
				d.device(item, ip, &dev)
				c.Devices = append(c.Devices, dev)
			})
		}},
	)
	c.applyDefaults()
	d.validate(c)
	if err := d.finish(file); err != nil {
		return c, err
	}
	return c, nil
}

func (d *decoder) gateway(n *yaml.Node, path string, g *Gateway) {
	d.Mapping(n, path,
		field{Key: "id", Decode: d.SetStr(&g.ID)},
		field{Key: "site", Decode: d.SetStr(&g.Site)},
		field{Key: "data_dir", Decode: d.SetStr(&g.DataDir)},
		field{Key: "console", Decode: func(n *yaml.Node, p string) {
			// A plain "host:port", or a mapping with the listen address
			// and the console's access settings.
			if n.Kind == yaml.ScalarNode {
				d.SetStr(&g.Console)(n, p)
				return
			}
			a := &g.ConsoleAccess
			defer func() {
				if g.Console == "" && strictyaml.Deref(n).Kind == yaml.MappingNode {
					d.Failf(n, p+".listen", "is required: the console's host:port, e.g. 127.0.0.1:8080")
				}
			}()
			d.Mapping(n, p,
				field{Key: "listen", Decode: d.SetStr(&g.Console)},
				field{Key: "users_file", Decode: d.SetStr(&a.UsersFile)},
				field{Key: "session_idle", Decode: d.SetDuration(&a.SessionIdle, time.Minute)},
				field{Key: "time_zone", Decode: d.SetStr(&a.TimeZone)},
				field{Key: "tls", Decode: func(n *yaml.Node, p string) {
					d.Mapping(n, p,
						field{Key: "cert_file", Decode: d.SetStr(&a.TLSCertFile)},
						field{Key: "key_file", Decode: d.SetStr(&a.TLSKeyFile)},
						field{Key: "self_signed", Decode: d.SetBool(&a.TLSSelfSigned)},
					)
				}},
			)
		}},
		field{Key: "signing_key", Decode: d.SetStr(&g.SigningKey)},
		field{Key: "journal", Decode: func(n *yaml.Node, p string) {
			d.Mapping(n, p,
				field{Key: "quota", Decode: d.SetByteSize(&g.Journal.Quota)},
				field{Key: "retention", Decode: d.SetDuration(&g.Journal.Retention, time.Hour)},
			)
		}},
		field{Key: "readiness", Decode: func(n *yaml.Node, p string) {
			d.Mapping(n, p,
				field{Key: "broker_unreachable", Decode: d.SetDuration(&g.Readiness.BrokerUnreachable, time.Second)},
				field{Key: "device_offline", Decode: d.SetDuration(&g.Readiness.DeviceOffline, time.Second)},
			)
		}},
	)
}

func (d *decoder) mqtt(n *yaml.Node, path string, m *MQTT) {
	d.Mapping(n, path,
		field{Key: "brokers", Decode: d.SetStrList(&m.Brokers)},
		field{Key: "topic_root", Decode: d.SetStr(&m.TopicRoot)},
		field{Key: "client_id", Decode: d.SetStr(&m.ClientID)},
		field{Key: "username", Decode: d.SetStr(&m.Username)},
		field{Key: "password_file", Decode: d.SetStr(&m.PasswordFile)},
		field{Key: "password_env", Decode: d.SetStr(&m.PasswordEnv)},
		field{Key: "keepalive", Decode: d.SetDuration(&m.KeepAlive, time.Second)},
		field{Key: "inflight", Decode: d.SetInt(&m.Inflight, 1, 1024)},
		field{Key: "confirm_timeout", Decode: d.SetDuration(&m.ConfirmTimeout, time.Second)},
		field{Key: "receipts", Decode: d.SetStr(&m.Receipts)},
		field{Key: "receipts_alarm_after", Decode: d.SetDuration(&m.ReceiptsAlarmAfter, time.Second)},
		field{Key: "receipts_republish_after", Decode: d.SetDuration(&m.ReceiptsRepublishAfter, time.Second)},
		field{Key: "tls", Decode: func(n *yaml.Node, p string) {
			d.Mapping(n, p,
				field{Key: "ca_file", Decode: d.SetStr(&m.TLS.CAFile)},
				field{Key: "cert_file", Decode: d.SetStr(&m.TLS.CertFile)},
				field{Key: "key_file", Decode: d.SetStr(&m.TLS.KeyFile)},
			)
		}},
	)
}

func (d *decoder) device(n *yaml.Node, path string, dev *Device) {
	d.Mapping(n, path,
		field{Key: "id", Decode: d.SetStr(&dev.ID)},
		field{Key: "driver", Decode: d.SetStr(&dev.Driver)},
		field{Key: "address", Decode: d.SetStr(&dev.Address)},
		field{Key: "unit", Decode: d.SetInt(&dev.Unit, 0, 255)},
		field{Key: "profile", Decode: d.SetStr(&dev.Profile)},
		field{Key: "poll_interval", Decode: d.SetDuration(&dev.PollInterval, 10*time.Millisecond)},
		field{Key: "timeout", Decode: d.SetDuration(&dev.Timeout, 10*time.Millisecond)},
		field{Key: "time_scale", Decode: d.SetNumber(&dev.TimeScale, 0, 100000)},
		field{Key: "pause_between_requests", Decode: d.SetDuration(&dev.PauseBetweenRequests, 0)},
		field{Key: "offline_after", Decode: d.SetInt(&dev.OfflineAfter, 1, 100)},
		field{Key: "template", Decode: d.SetStr(&dev.Template)},
		field{Key: "report_timeout", Decode: d.SetDuration(&dev.ReportTimeout, time.Second)},
		field{Key: "criteria", Decode: d.criteria(&dev.Criteria)},
		field{Key: "serial", Decode: func(n *yaml.Node, p string) {
			s := &dev.Serial
			d.Mapping(n, p,
				field{Key: "port", Decode: d.SetStr(&s.Port)},
				field{Key: "baud", Decode: d.SetInt(&s.Baud, 50, 4000000)},
				field{Key: "data_bits", Decode: d.SetInt(&s.DataBits, 5, 8)},
				field{Key: "parity", Decode: d.SetStr(&s.Parity)},
				field{Key: "stop_bits", Decode: d.SetInt(&s.StopBits, 1, 2)},
				field{Key: "usb", Decode: func(n *yaml.Node, p string) {
					d.Mapping(n, p,
						field{Key: "vid", Decode: d.SetStr(&s.USB.VID)},
						field{Key: "pid", Decode: d.SetStr(&s.USB.PID)},
						field{Key: "serial", Decode: d.SetStr(&s.USB.Serial)},
					)
				}},
			)
		}},
	)
}

func (c *Config) applyDefaults() {
	if c.Gateway.DataDir == "" {
		c.Gateway.DataDir = DefaultDataDir
	}
	if c.Gateway.Journal.Retention == 0 {
		c.Gateway.Journal.Retention = DefaultRetention
	}
	if c.Gateway.Readiness.BrokerUnreachable == 0 {
		c.Gateway.Readiness.BrokerUnreachable = DefaultBrokerUnreachable
	}
	if c.Gateway.Readiness.DeviceOffline == 0 {
		c.Gateway.Readiness.DeviceOffline = DefaultDeviceOffline
	}
	if c.Gateway.ID != "" {
		c.MQTT.applyDefaults("sterigate-" + c.Gateway.ID)
	} else {
		c.MQTT.applyDefaults("")
	}
	for i := range c.Devices {
		dev := &c.Devices[i]
		if dev.PollInterval == 0 {
			dev.PollInterval = DefaultPollInterval
		}
		if dev.Timeout == 0 {
			dev.Timeout = DefaultTimeout
		}
		if dev.TimeScale == 0 {
			dev.TimeScale = 1
		}
		if dev.Unit == unitUnset {
			dev.Unit = 1
			if dev.Driver == DriverPrinter {
				dev.Unit = 0
			}
		}
		s := &dev.Serial
		if s.Baud == 0 {
			s.Baud = DefaultModbusBaud
			if dev.Driver == DriverPrinter {
				s.Baud = DefaultPrinterBaud
			}
		}
		if s.DataBits == 0 {
			s.DataBits = 8
		}
		if s.StopBits == 0 {
			s.StopBits = 1
		}
		if s.Parity == "" {
			// Modbus RTU's standard framing is 8E1; printers are 8N1.
			s.Parity = "even"
			if dev.Driver == DriverPrinter {
				s.Parity = "none"
			}
		}
	}
}

// applyDefaults fills the mqtt block's defaults; clientID is the default
// client id ("" leaves it empty).
func (m *MQTT) applyDefaults(clientID string) {
	if m.TopicRoot == "" {
		m.TopicRoot = DefaultTopicRoot
	}
	if m.ClientID == "" {
		m.ClientID = clientID
	}
	if m.KeepAlive == 0 {
		m.KeepAlive = DefaultKeepAlive
	}
	if m.Inflight == 0 {
		m.Inflight = DefaultInflight
	}
	if m.ConfirmTimeout == 0 {
		m.ConfirmTimeout = DefaultConfirmTimeout
	}
	if m.Receipts == "" {
		m.Receipts = ReceiptsOff
	}
	if m.ReceiptsAlarmAfter == 0 {
		m.ReceiptsAlarmAfter = DefaultReceiptsAlarmAfter
	}
	if m.ReceiptsRepublishAfter == 0 {
		m.ReceiptsRepublishAfter = DefaultReceiptsRepublishAfter
	}
}

// validate checks what each key means together with the others, each
// mistake on the line of the key it names (or of the closest enclosing
// key, for a key left out).
func (d *decoder) validate(c *Config) {
	gw := c.Gateway
	if gw.ID == "" {
		d.FailAtf("gateway.id", "is required: a name for this gateway, e.g. cssd-gw-1")
	} else if err := protocol.CheckTopicLevel("gateway.id", gw.ID); err != nil {
		d.FailAtf("gateway.id", "%s", strings.TrimPrefix(err.Error(), "gateway.id "))
	}
	if gw.Site == "" {
		d.FailAtf("gateway.site", "is required: the site name used in topics, e.g. dax")
	} else if err := protocol.CheckTopicLevel("gateway.site", gw.Site); err != nil {
		d.FailAtf("gateway.site", "%s", strings.TrimPrefix(err.Error(), "gateway.site "))
	}
	if gw.Console != "" {
		if _, _, err := net.SplitHostPort(gw.Console); err != nil {
			d.FailAtf("gateway.console", "%q is not host:port (e.g. 127.0.0.1:8080)", gw.Console)
		}
	}
	if a := gw.ConsoleAccess; a != (ConsoleAccess{}) {
		if (a.TLSCertFile == "") != (a.TLSKeyFile == "") {
			d.FailAtf("gateway.console.tls", "cert_file and key_file go together")
		}
		if a.TLSSelfSigned && a.TLSCertFile != "" {
			d.FailAtf("gateway.console.tls", "give cert_file and key_file, or self_signed: true, not both")
		}
		if a.TimeZone != "" {
			if _, err := time.LoadLocation(a.TimeZone); err != nil {
				d.FailAtf("gateway.console.time_zone", "%q is not a time zone (e.g. Europe/Paris): %v", a.TimeZone, err)
			}
		}
	}

	d.validateMQTT(c.MQTT)

	ids := map[string]int{}
	for i, dev := range c.Devices {
		d.validateDevice(i, dev, ids)
	}
	d.validateBuses(c.Devices)
}

// validateMQTT checks the mqtt block, which the gateway's and the
// archive's files share.
func (d *decoder) validateMQTT(m MQTT) {
	if len(m.Brokers) == 0 {
		d.FailAtf("mqtt.brokers", "is required: at least one broker URL, e.g. tcp://127.0.0.1:1883")
	}
	for i, b := range m.Brokers {
		p := fmt.Sprintf("mqtt.brokers[%d]", i)
		if err := CheckBrokerURLHasNoCredentials(b); err != nil {
			d.FailAtf(p, "%v", err)
			continue
		}
		u, err := url.Parse(b)
		if err != nil || u.Host == "" {
			d.FailAtf(p, "%q is not a broker URL (e.g. tcp://host:1883 or ssl://host:8883)", b)
			continue
		}
		switch u.Scheme {
		case "tcp", "mqtt", "ssl", "tls", "mqtts", "tcps":
		default:
			d.FailAtf(p, "%q: scheme %q is not one of tcp, mqtt, ssl, tls, mqtts, tcps", b, u.Scheme)
		}
		if u.Port() == "" {
			d.FailAtf(p, "%q has no port (1883 for tcp, 8883 for ssl)", b)
		}
		if tls := m.TLS; (tls.CAFile != "" || tls.CertFile != "" || tls.KeyFile != "") && (u.Scheme == "tcp" || u.Scheme == "mqtt") {
			d.FailAtf(p, "%q: mqtt.tls files are set but the scheme %q is plain TCP; use ssl://", b, u.Scheme)
		}
	}
	if err := protocol.CheckTopicLevel("mqtt.topic_root", m.TopicRoot); err != nil {
		d.FailAtf("mqtt.topic_root", "%s", strings.TrimPrefix(err.Error(), "mqtt.topic_root "))
	}
	if m.KeepAlive > 30*time.Second {
		d.FailAtf("mqtt.keepalive", "%s is longer than 30s: a dead link would go unnoticed too long", m.KeepAlive)
	}
	if m.PasswordFile != "" && m.PasswordEnv != "" {
		d.FailAtf("mqtt.password_env", "give password_file or password_env, not both")
	}
	switch m.Receipts {
	case ReceiptsOff, ReceiptsExpected, ReceiptsRequired:
	default:
		d.FailAtf("mqtt.receipts", "%q is not one of off, expected, required", m.Receipts)
	}
	if (m.TLS.CertFile == "") != (m.TLS.KeyFile == "") {
		d.FailAtf("mqtt.tls", "cert_file and key_file go together (mutual TLS needs both)")
	}
}

func (d *decoder) validateDevice(i int, dev Device, ids map[string]int) {
	p := fmt.Sprintf("devices[%d]", i)
	if dev.ID == "" {
		d.FailAtf(p+".id", "is required: a name for this sterilizer, e.g. autoclave-1")
	} else if err := protocol.CheckTopicLevel(p+".id", dev.ID); err != nil {
		d.FailAtf(p+".id", "%s", strings.TrimPrefix(err.Error(), p+".id "))
	} else if dev.ID == protocol.ReservedDeviceID {
		d.FailAtf(p+".id", "%q is reserved for the gateway's own status topic", dev.ID)
	} else if j, dup := ids[dev.ID]; dup {
		d.FailAtf(p+".id", "%q is already used by devices[%d]", dev.ID, j)
	} else {
		ids[dev.ID] = i
	}
	switch dev.Driver {
	case DriverModbusTCP, DriverModbusRTUTCP:
		if _, _, err := net.SplitHostPort(dev.Address); err != nil {
			d.FailAtf(p+".address", "%q is not host:port (e.g. 192.168.10.20:502)", dev.Address)
		}
	case DriverModbusRTU, DriverPrinter:
		if dev.Serial.Port == "" && dev.Serial.USB.VID == "" {
			d.FailAtf(p+".serial.port", "is required for driver %s (e.g. /dev/ttyUSB0), or give serial.usb to find the adapter", dev.Driver)
		}
	case "":
		d.FailAtf(p+".driver", "is required: one of %s", strings.Join(drivers, ", "))
	default:
		d.FailAtf(p+".driver", "%q is not one of %s", dev.Driver, strings.Join(drivers, ", "))
	}
	if dev.TimeScale != 1 && dev.Driver == DriverPrinter {
		// The simulator prints on its own clock: a printout's times are
		// already the device's, and scaling them again would be wrong.
		d.FailAtf(p+".time_scale", "is only used by Modbus drivers: a printout's times are the device's own")
	}
	switch dev.Driver {
	case DriverModbusTCP, DriverModbusRTU, DriverModbusRTUTCP:
		if dev.Profile == "" {
			d.FailAtf(p+".profile", "is required for Modbus devices: a built-in profile name (e.g. sim-autoclave) or a profile file")
		}
		// On a serial bus 0 is broadcast (never answered) and 248-255 are
		// reserved; a Modbus TCP device may answer to any unit id.
		if dev.Driver != DriverModbusTCP && (dev.Unit < 1 || dev.Unit > 247) {
			d.FailAtf(p+".unit", "%d: a Modbus RTU unit id is 1 to 247 (0 is broadcast and never answers)", dev.Unit)
		}
	case DriverPrinter:
		if dev.Template == "" {
			d.FailAtf(p+".template", "is required for the printer driver: a built-in template name or a template file")
		}
		if dev.ReportTimeout > MaxReportTimeout {
			d.FailAtf(p+".report_timeout", "%s is longer than %s: a printout cut by a power loss would wait that long to be recorded", dev.ReportTimeout, MaxReportTimeout)
		}
		if dev.OfflineAfter != 0 {
			d.FailAtf(p+".offline_after", "is only used by the Modbus drivers, not %s", dev.Driver)
		}
	}
	if dev.ReportTimeout != 0 && dev.Driver != DriverPrinter && dev.Driver != "" {
		d.FailAtf(p+".report_timeout", "is only used by the printer driver, not %s", dev.Driver)
	}
	switch dev.Serial.Parity {
	case "none", "even", "odd":
	default:
		d.FailAtf(p+".serial.parity", "%q is not one of none, even, odd", dev.Serial.Parity)
	}
}

// validateBuses checks the devices that share one physical link: RTU
// devices on one serial port (one bus, one set of line settings) or one
// device server, Modbus TCP devices behind one address. Two of them may not
// use the same unit, and a serial port is either a Modbus bus or a
// printer's, never both.
func (d *decoder) validateBuses(devs []Device) {
	first := map[string]int{}
	units := map[string]int{}
	ports := map[string]int{}
	for i, dev := range devs {
		p := fmt.Sprintf("devices[%d]", i)
		if port := dev.Serial.Port; port != "" && (dev.Driver == DriverModbusRTU || dev.Driver == DriverPrinter) {
			if j, used := ports[port]; used && (devs[j].Driver == DriverPrinter || dev.Driver == DriverPrinter) {
				d.FailAtf(p+".serial.port",
					"%s is already used by devices[%d] (%s); a printer port carries one printer and nothing else", port, j, devs[j].Driver)
			} else if !used {
				ports[port] = i
			}
		}
		bus := dev.BusKey()
		switch dev.Driver {
		case DriverModbusTCP, DriverModbusRTU, DriverModbusRTUTCP:
		default:
			continue
		}
		key := fmt.Sprintf("%s#%d", bus, dev.Unit)
		if j, dup := units[key]; dup {
			d.FailAtf(p+".unit", "unit %d on %s is already devices[%d]", dev.Unit, strings.TrimPrefix(strings.TrimPrefix(bus, "serial:"), "tcp:"), j)
		}
		units[key] = i
		if dev.Driver == DriverModbusTCP {
			continue
		}
		j, seen := first[bus]
		if !seen {
			first[bus] = i
			continue
		}
		if devs[j].Serial.Baud != dev.Serial.Baud || devs[j].Serial.Parity != dev.Serial.Parity ||
			devs[j].Serial.DataBits != dev.Serial.DataBits || devs[j].Serial.StopBits != dev.Serial.StopBits {
			d.FailAtf(p+".serial",
				"line settings differ from devices[%d] on the same bus %s (%d %d%s%d vs %d %d%s%d)", j, strings.TrimPrefix(bus, "serial:"),
				dev.Serial.Baud, dev.Serial.DataBits, dev.Serial.Parity[:1], dev.Serial.StopBits,
				devs[j].Serial.Baud, devs[j].Serial.DataBits, devs[j].Serial.Parity[:1], devs[j].Serial.StopBits)
		}
	}
}

// CheckBrokerURLHasNoCredentials refuses a broker URL with a user name or
// password in it (tcp://user:secret@host): a URL is printed in logs,
// errors and 'ps', and the secret with it. The message shows the URL
// without them.
func CheckBrokerURLHasNoCredentials(broker string) error {
	if RedactURL(broker) == broker {
		return nil
	}
	return fmt.Errorf("%q: credentials must not be written in the broker URL (it is shown in logs and errors); give mqtt.username and mqtt.password_file (or password_env)", RedactURL(broker))
}

// RedactURL returns url with everything between "://" and the host's "@"
// (user name and password) replaced by REDACTED; url itself when it has
// none. It works on strings that do not parse as URLs too: a password
// may hold any character.
func RedactURL(s string) string {
	i := strings.Index(s, "://")
	if i < 0 {
		return s
	}
	j := strings.LastIndexByte(s, '@')
	if j < i+3 {
		return s
	}
	return s[:i+3] + "REDACTED" + s[j:]
}

// BusKey groups devices that share one physical link: RTU devices on the
// same serial port, RTU-over-TCP devices behind the same device server,
// Modbus TCP devices behind the same address (a TCP-to-RTU gateway). Other
// devices get a key of their own.
func (dev Device) BusKey() string {
	switch dev.Driver {
	case DriverModbusRTU:
		if dev.Serial.Port != "" {
			return "serial:" + dev.Serial.Port
		}
		return "usb:" + dev.Serial.USB.VID + ":" + dev.Serial.USB.PID + ":" + dev.Serial.USB.Serial
	case DriverModbusRTUTCP:
		return "rtu-tcp:" + dev.Address
	case DriverModbusTCP:
		return "tcp:" + dev.Address
	}
	return "device:" + dev.ID
}
