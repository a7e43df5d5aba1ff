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

// DeviceStatus is the retained payload of a device status topic. It is
// only as fresh as its gateway: while the gateway's status is offline (its
// Last Will), a consumer must treat it as stale.
type DeviceStatus struct {
	Device string `json:"device"`
	// Gateway is the id of the gateway that watches the device: while that
	// gateway's status is offline, this status is stale.
	Gateway string `json:"gateway,omitempty"`
	State   string `json:"state"`
	// StateSince is when State began (for how long a device has been
	// offline, or not reached since the gateway started).
	StateSince time.Time `json:"state_since,omitzero"`
	// Phase, Program and Cycle describe the cycle running now (Program and
	// Cycle are absent between cycles); Since is when Phase began.
	Phase   PhaseName `json:"phase,omitempty"`
	Program string    `json:"program,omitempty"`
	Cycle   uint64    `json:"cycle,omitempty"`
	Since   time.Time `json:"since,omitzero"`
	Error   string    `json:"error,omitempty"`
	// LastCycle is the last finished cycle the gateway recorded.
	LastCycle *LastCycle `json:"last_cycle,omitempty"`
	At        time.Time  `json:"at"`
}

// LastCycle summarises a device's last recorded cycle in its status.
type LastCycle struct {
	ID      string    `json:"id"`
	Cycle   uint64    `json:"cycle"`
	Program string    `json:"program"`
	EndedAt time.Time `json:"ended_at"`
	Result  Result    `json:"result"`
	// Verdict is sterigate's own (Verification.Verdict); Disagreement is
	// true when it does not agree with the device's Result.
	Verdict      string `json:"verdict,omitempty"`
	Disagreement bool   `json:"disagreement,omitempty"`
	Complete     bool   `json:"complete"`
}
