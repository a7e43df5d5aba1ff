package config

import (
	"strings"
	"testing"
	"time"
)

func TestConsoleAsMapping(t *testing.T) {
	const head = "mqtt: {brokers: [\"tcp://127.0.0.1:1883\"]}\ngateway:\n  id: gw\n  site: dax\n"
	c, err := Parse("c.yaml", []byte(head+`  console:
    listen: 0.0.0.0:8443
    users_file: console-users
    session_idle: 15m
    time_zone: Europe/Paris
    tls: {self_signed: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	a := c.Gateway.ConsoleAccess
	if c.Gateway.Console != "0.0.0.0:8443" || a.UsersFile != "console-users" || a.SessionIdle != 15*time.Minute ||
		a.TimeZone != "Europe/Paris" || !a.TLSSelfSigned {
		t.Errorf("console %q %+v", c.Gateway.Console, a)
	}
	// The plain address still works.
	c, err = Parse("c.yaml", []byte(head+"  console: 127.0.0.1:8080\n"))
	if err != nil || c.Gateway.Console != "127.0.0.1:8080" {
		t.Errorf("plain console: %q, %v", c.Gateway.Console, err)
	}
	for _, bad := range []struct{ yaml, want string }{
		{"  console: {users_file: u}\n", "gateway.console.listen: is required"},
		{"  console: {listen: \"127.0.0.1:1\", tls: {cert_file: c.pem}}\n", "cert_file and key_file go together"},
		{"  console: {listen: \"127.0.0.1:1\", tls: {cert_file: c.pem, key_file: k.pem, self_signed: true}}\n", "not both"},
		{"  console: {listen: \"127.0.0.1:1\", time_zone: Mars/Olympus}\n", `"Mars/Olympus" is not a time zone`},
		{"  console: {listen: \"127.0.0.1:1\", colour: red}\n", "colour"},
	} {
		_, err := Parse("c.yaml", []byte(head+bad.yaml))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: %v, want %q", bad.yaml, err, bad.want)
		}
	}
}
