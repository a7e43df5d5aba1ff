package protocol

import (
	"fmt"
	"strings"
)

// Topics builds the MQTT topic names under one root and site. Keeping them
// in one place keeps the gateway, the docs and consumers in step.
type Topics struct {
	Root string // e.g. "sterigate"
	Site string // e.g. "dax"
}

// Cycle is where a device's cycle records go (QoS 1, not retained).
func (t Topics) Cycle(device string) string { return t.join(device, "cycle") }

// Telemetry is where a device's sample batches go (QoS 1, not retained).
func (t Topics) Telemetry(device string) string { return t.join(device, "telemetry") }

// Event is where a device's events go (QoS 1, not retained).
func (t Topics) Event(device string) string { return t.join(device, "event") }

// DeviceStatus is a device's retained status.
func (t Topics) DeviceStatus(device string) string { return t.join(device, "status") }

// GatewayStatus is the gateway's retained status (and its Last Will).
func (t Topics) GatewayStatus(gateway string) string {
	return t.join("gateway", gateway, "status")
}

// GatewayKey is the gateway's retained public signing key (a key message
// of protocol/evidence), so receivers can check signatures.
func (t Topics) GatewayKey(gateway string) string {
	return t.join("gateway", gateway, "key")
}

// GatewayReceipt is where archives tell the gateway up to which seq its
// devices' entries are stored (a Receipt; QoS 1, not retained).
func (t Topics) GatewayReceipt(gateway string) string {
	return t.join("gateway", gateway, "receipt")
}

// ArchiveAlarm is where an archive instance publishes the problems it
// finds in the site's messages (gaps, breaks, conflicts; QoS 1, not
// retained).
func (t Topics) ArchiveAlarm(archive string) string {
	return t.join("archive", archive, "alarm")
}

func (t Topics) join(parts ...string) string {
	return strings.Join(append([]string{t.Root, t.Site}, parts...), "/")
}

// ReservedDeviceID may not name a device: its topics would collide with the
// gateway's own status topic.
const ReservedDeviceID = "gateway"

// CheckTopicLevel reports why s cannot be one level of an MQTT topic, or
// nil. what names the setting for the error (e.g. "gateway.site").
func CheckTopicLevel(what, s string) error {
	if s == "" {
		return fmt.Errorf("%s is empty", what)
	}
	if strings.ContainsAny(s, "/+#\x00") {
		return fmt.Errorf("%s %q must not contain '/', '+', '#' or NUL: it is one level of an MQTT topic", what, s)
	}
	return nil
}
