package config

import (
	"strings"
	"testing"
	"time"
)

// TestCredentialsInBrokerURLAreRefusedWithoutShowingThem: a password
// written in a broker URL would be in every log line that names the
// broker. It is refused, and the refusal does not repeat it.
func TestCredentialsInBrokerURLAreRefusedWithoutShowingThem(t *testing.T) {
	for _, broker := range []string{
		"tcp://gw:s3cret-pw@broker.lan:1883",
		"ssl://s3cret-pw@broker.lan:8883",
		"tcp://gw:s3cret/pw@broker.lan:1883", // not a URL url.Parse accepts
	} {
		yaml := "gateway: {id: gw, site: dax}\nmqtt:\n  brokers: [\"" + broker + "\"]\ndevices: []\n"
		_, err := Parse("s.yaml", []byte(yaml))
		if err == nil {
			t.Errorf("%s: accepted", broker)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: the error shows the secret: %v", broker, err)
		}
		if !strings.Contains(err.Error(), "mqtt.password_file") || !strings.Contains(err.Error(), "s.yaml:3: mqtt.brokers[0]") {
			t.Errorf("%s: the error %q does not point at the line and at mqtt.password_file", broker, err)
		}
	}
	if got := RedactURL("tcp://u:p@h:1"); got != "tcp://REDACTED@h:1" {
		t.Errorf("RedactURL = %q", got)
	}
}

func TestConfirmTimeout(t *testing.T) {
	c, err := Parse("s.yaml", []byte("gateway: {id: gw, site: dax}\nmqtt: {brokers: [\"tcp://h:1883\"]}\ndevices: []\n"))
	if err != nil || c.MQTT.ConfirmTimeout != DefaultConfirmTimeout {
		t.Fatalf("default confirm_timeout: %v %v", c.MQTT.ConfirmTimeout, err)
	}
	c, err = Parse("s.yaml", []byte("gateway: {id: gw, site: dax}\nmqtt: {brokers: [\"tcp://h:1883\"], confirm_timeout: 2m}\ndevices: []\n"))
	if err != nil || c.MQTT.ConfirmTimeout != 2*time.Minute {
		t.Fatalf("confirm_timeout 2m: %v %v", c.MQTT.ConfirmTimeout, err)
	}
	if _, err := Parse("s.yaml", []byte("gateway: {id: gw, site: dax}\nmqtt: {brokers: [\"tcp://h:1883\"], confirm_timeout: 10ms}\ndevices: []\n")); err == nil {
		t.Fatal("confirm_timeout 10ms accepted")
	}
}
