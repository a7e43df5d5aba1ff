package config

import (
	"strings"
	"testing"
)

func TestTimeScale(t *testing.T) {
	const head = "gateway: {id: gw, site: dax}\nmqtt: {brokers: [\"tcp://127.0.0.1:1883\"]}\ndevices:\n"
	c, err := Parse("ts.yaml", []byte(head+
		"  - {id: real, driver: modbus-tcp, address: \"10.0.0.1:502\", profile: sim-autoclave}\n"+
		"  - {id: sim, driver: modbus-tcp, address: \"127.0.0.1:1502\", profile: sim-autoclave, time_scale: 20}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Devices[0].TimeScale != 1 || c.Devices[1].TimeScale != 20 {
		t.Errorf("time scales %v and %v, want 1 (default) and 20", c.Devices[0].TimeScale, c.Devices[1].TimeScale)
	}
	for value, want := range map[string]string{
		"0":    `ts.yaml:4: devices[0].time_scale: 0 is out of range (above 0, at most 100000)`,
		"-2":   `devices[0].time_scale: -2 is out of range`,
		"fast": `devices[0].time_scale: "fast" is not a finite number`,
		".nan": `devices[0].time_scale: ".nan" is not a finite number`,
	} {
		_, err := Parse("ts.yaml", []byte(head+"  - {id: a, driver: modbus-tcp, address: \"10.0.0.1:502\", profile: sim-autoclave, time_scale: "+value+"}\n"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("time_scale %s: err = %v\nwant %s", value, err, want)
		}
	}
	_, err = Parse("ts.yaml", []byte(head+"  - {id: p, driver: printer, serial: {port: /dev/ttyUSB0}, template: statclave-en, time_scale: 20}\n"))
	if want := "devices[0].time_scale: is only used by Modbus drivers"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("printer with a time_scale: err = %v\nwant %s", err, want)
	}
}
