package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestIssueExampleLoads(t *testing.T) {
	c, err := Load("testdata/good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Gateway.ID != "cssd-gw-1" || c.Gateway.Site != "dax" || c.Gateway.DataDir != "./data" {
		t.Errorf("gateway = %+v", c.Gateway)
	}
	if len(c.Devices) != 1 {
		t.Fatalf("devices = %+v", c.Devices)
	}
	d := c.Devices[0]
	if d.ID != "autoclave-1" || d.Driver != DriverModbusTCP || d.Address != "127.0.0.1:1502" || d.Unit != 1 ||
		d.Profile != "sim-autoclave" || d.PollInterval != time.Second || d.Timeout != DefaultTimeout {
		t.Errorf("device = %+v", d)
	}
	if c.MQTT.ClientID != "sterigate-cssd-gw-1" || c.MQTT.KeepAlive != DefaultKeepAlive || c.MQTT.Inflight != DefaultInflight {
		t.Errorf("mqtt defaults = %+v", c.MQTT)
	}
	if c.Gateway.Journal.Retention != DefaultRetention {
		t.Errorf("retention = %v", c.Gateway.Journal.Retention)
	}
	if r := c.Gateway.Readiness; r.BrokerUnreachable != DefaultBrokerUnreachable || r.DeviceOffline != 10*time.Minute {
		t.Errorf("readiness = %+v, want the default broker limit and 10m for devices", r)
	}
	// Keys found later to be wrong are reported on their own line.
	if n := c.Line("devices[0].profile"); n != 5 {
		t.Errorf("Line(devices[0].profile) = %d, want 5", n)
	}
	if n := c.Line("mqtt.password_file"); n != 2 {
		t.Errorf("Line of an absent key = %d, want its section's line 2", n)
	}
	if e := c.Errorf("devices[0].profile", "%q is wrong", "x"); e.Error() != `testdata/good.yaml:5: devices[0].profile: "x" is wrong` {
		t.Errorf("Errorf = %q", e)
	}
}

// A YAML syntax error is reported on the line of the mistake, not where
// yaml.v3 says (the line before the enclosing list began).
func TestSyntaxErrorOnTheRightLine(t *testing.T) {
	_, err := Parse("s.yaml", []byte("gateway: {id: gw, site: dax}\nmqtt:\n  brokers: [\"tcp://x:1\"]\ndevices:\n  - id: a\n    driver: modbus-tcp\n   profile: x\n"))
	if err == nil || !strings.HasPrefix(err.Error(), "s.yaml:7: not valid YAML: ") {
		t.Errorf("err = %v, want it on s.yaml:7", err)
	}
}

// check goes on with what could be decoded from a config with mistakes.
func TestLoadPartialKeepsWhatDecoded(t *testing.T) {
	c, err := LoadPartial("testdata/bad.yaml")
	if err == nil || c == nil || len(c.Devices) != 4 || c.Devices[0].Profile != "sim-autoclave" {
		t.Fatalf("LoadPartial = %+v, %v; want the four devices and the errors", c, err)
	}
	if c, err := Load("testdata/bad.yaml"); c != nil || err == nil {
		t.Errorf("Load returned a config with errors")
	}
}

// The shipped configs must always load: they are what newcomers copy.
func TestShippedConfigsLoad(t *testing.T) {
	for _, p := range []string{"sterigate.example.yaml", "deploy/sterigate.compose.yaml"} {
		if _, err := Load(filepath.Join("..", "..", p)); err != nil {
			t.Error(err)
		}
	}
	if _, err := LoadArchive(filepath.Join("..", "..", "archive.example.yaml")); err != nil {
		t.Error(err)
	}
}

// Every mistake is reported at once, each with file, line, key and value.
func TestErrorsNameFileLineKeyAndValue(t *testing.T) {
	_, err := Load("testdata/bad.yaml")
	if err == nil {
		t.Fatal("bad config loaded")
	}
	got := err.Error() + "\n"
	golden := "testdata/bad.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("errors differ from %s (run with -update after checking):\n got:\n%s\nwant:\n%s", golden, got, want)
	}
	for _, must := range []string{
		`testdata/bad.yaml:2: gateway.id: "cssd/gw" must not contain`,
		`gateway.journal.quota: "lots" is not a size`,
		`devices[0].poll_interval: "1x" is not a duration`,
		`devices[1].driver: "modbus-tpc" is not one of`,
		`devices[1].unit: 300 is out of range`,
		`devices[2].unit: 0: a Modbus RTU unit id is 1 to 247`,
		`devices[3].serial.port: /dev/ttyUSB0 is already used by devices[2] (modbus-rtu)`,
		`devices[1].id: "autoclave-1" is already used by devices[0]`,
		`devices[3].colour: unknown key`,
		`devices[2].serial.parity: "mark" is not one of none, even, odd`,
	} {
		if !strings.Contains(got, must) {
			t.Errorf("errors lack %q", must)
		}
	}
}

func TestNotYAMLOrEmpty(t *testing.T) {
	for name, data := range map[string]string{
		"empty":   "",
		"tabs":    "gateway:\n\tid: x\n",
		"list":    "- a\n- b\n",
		"scalars": "gateway: 3\nmqtt: {brokers: tcp://x:1}\n",
	} {
		_, err := Parse(name+".yaml", []byte(data))
		if err == nil || !strings.HasPrefix(err.Error(), name+".yaml") {
			t.Errorf("%s: err = %v, want an error naming the file", name, err)
		}
	}
}

func TestRTUBusMustAgree(t *testing.T) {
	_, err := Parse("bus.yaml", []byte(`
gateway: {id: g, site: s}
mqtt: {brokers: ["tcp://127.0.0.1:1883"]}
devices:
  - {id: a, driver: modbus-rtu, unit: 1, profile: sim-autoclave, serial: {port: /dev/ttyUSB0, baud: 19200}}
  - {id: b, driver: modbus-rtu, unit: 1, profile: sim-autoclave, serial: {port: /dev/ttyUSB0, baud: 9600}}
`))
	if err == nil {
		t.Fatal("conflicting bus accepted")
	}
	for _, must := range []string{"bus.yaml:6: devices[1].unit: unit 1 on /dev/ttyUSB0 is already devices[0]",
		"bus.yaml:6: devices[1].serial: line settings differ from devices[0]"} {
		if !strings.Contains(err.Error(), must) {
			t.Errorf("error %q lacks %q", err, must)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, p := range []string{"testdata/good.yaml", "testdata/bad.yaml"} {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(criteriaHead + "      134-porous: &s {equilibration_s: 30}\n      2: {kind: prion, band_k: 4}\n      x: *s\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if (c == nil) == (err == nil) {
			t.Fatalf("Parse returned config %v and error %v", c, err)
		}
	})
}

func TestSameUnitTwiceBehindOneTCPAddress(t *testing.T) {
	_, err := Parse("tcp.yaml", []byte(`
gateway: {id: g, site: s}
mqtt: {brokers: ["tcp://127.0.0.1:1883"]}
devices:
  - {id: a, driver: modbus-tcp, address: "10.0.0.5:502", unit: 0, profile: sim-autoclave}
  - {id: b, driver: modbus-tcp, address: "10.0.0.5:502", unit: 0, profile: sim-autoclave}
  - {id: c, driver: modbus-tcp, address: "10.0.0.5:502", unit: 255, profile: sim-autoclave}
`))
	if err == nil || !strings.Contains(err.Error(), "tcp.yaml:6: devices[1].unit: unit 0 on 10.0.0.5:502 is already devices[0]") {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), "devices[2]") || strings.Contains(err.Error(), "devices[0]: ") {
		t.Errorf("units 0 and 255 are valid for Modbus TCP: %v", err)
	}
}

// offline_after is one setting for every Modbus transport; absent, the
// driver's default (3) applies.
func TestOfflineAfter(t *testing.T) {
	c, err := Parse("oa.yaml", []byte(`
gateway: {id: g, site: s}
mqtt: {brokers: ["tcp://127.0.0.1:1883"]}
devices:
  - {id: a, driver: modbus-tcp, address: "10.0.0.5:502", profile: sim-autoclave, offline_after: 5}
  - {id: b, driver: modbus-rtu-tcp, address: "10.0.0.6:4001", profile: sim-autoclave}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Devices[0].OfflineAfter != 5 || c.Devices[1].OfflineAfter != 0 {
		t.Fatalf("offline_after = %d, %d", c.Devices[0].OfflineAfter, c.Devices[1].OfflineAfter)
	}
	_, err = Parse("oa.yaml", []byte(`
gateway: {id: g, site: s}
mqtt: {brokers: ["tcp://127.0.0.1:1883"]}
devices:
  - {id: a, driver: modbus-tcp, address: "10.0.0.5:502", profile: sim-autoclave, offline_after: 0}
`))
	if err == nil || !strings.Contains(err.Error(), "oa.yaml:5: devices[0].offline_after: 0 is out of range (1 to 100)") {
		t.Fatalf("offline_after 0: %v", err)
	}
	_, err = Parse("oa.yaml", []byte(`
gateway: {id: g, site: s}
mqtt: {brokers: ["tcp://127.0.0.1:1883"]}
devices:
  - {id: p, driver: printer, serial: {port: /dev/ttyS0}, template: dac-de, offline_after: 3}
`))
	if err == nil || !strings.Contains(err.Error(), "oa.yaml:5: devices[0].offline_after: is only used by the Modbus drivers, not printer") {
		t.Fatalf("offline_after on a printer: %v", err)
	}
}

// gateway.signing_key is read as given; absent, it stays empty (the key
// then lives in the data directory).
func TestSigningKey(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{`gateway: {id: gw, site: dax, signing_key: /etc/sterigate/signing.key}`, "/etc/sterigate/signing.key"},
		{`gateway: {id: gw, site: dax}`, ""},
	} {
		c, err := Parse("s.yaml", []byte(tc.yaml+"\nmqtt: {brokers: [\"tcp://127.0.0.1:1883\"]}\n"))
		if err != nil {
			t.Fatalf("%s: %v", tc.yaml, err)
		}
		if c.Gateway.SigningKey != tc.want {
			t.Errorf("%s: signing key %q, want %q", tc.yaml, c.Gateway.SigningKey, tc.want)
		}
	}
}
