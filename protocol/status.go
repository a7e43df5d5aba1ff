package protocol

import "time"

// Gateway states published retained on the gateway status topic. Offline
// is also the MQTT Last Will, so it appears when the gateway dies.
const (
	GatewayOnline  = "online"
	GatewayOffline = "offline"
)

// GatewayStatus is the retained payload of the gateway status topic.
type GatewayStatus struct {
	Gateway string    `json:"gateway"`
	Site    string    `json:"site"`
	State   string    `json:"state"` // online | offline
	Version string    `json:"version,omitempty"`
	At      time.Time `json:"at,omitzero"`
	// Alarms lists the gateway's own active alarms (journal near quota,
	// disk full); empty when healthy.
	Alarms []string `json:"alarms,omitempty"`
}

// Device connection states.
const (
	DeviceOnline  = "online"  // the last poll succeeded
	DeviceOffline = "offline" // the device does not answer
	DeviceUnknown = "unknown" // the gateway has not reached it yet
)

// DeviceStatus is the retained payload of a device status topic.
type DeviceStatus struct {
	Device  string    `json:"device"`
	State   string    `json:"state"`
	Phase   PhaseName `json:"phase,omitempty"`
	Program string    `json:"program,omitempty"`
	Cycle   uint64    `json:"cycle,omitempty"`
	Error   string    `json:"error,omitempty"`
	At      time.Time `json:"at"`
}
