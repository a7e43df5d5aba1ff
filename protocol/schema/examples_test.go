package schema_test

import (
	"crypto/ed25519"
	"strconv"
	"time"

	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/protocol/evidence"
)

// The golden examples are Go values of the protocol types, so a change to
// a type shows up as a changed golden file and, unless its schema changes
// with it, as a failed validation.

var t0 = time.Date(2026, 11, 28, 8, 40, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func ptr[T any](v T) *T { return &v }

const prev = "9f2c0e4b1a7d3c5e8f6a2b4d0c1e3f5a7b9d2c4e6f8a0b1c3d5e7f9a2b4c6d8e"

func event(kind protocol.EventKind, seq uint64) protocol.Event {
	return protocol.Event{Schema: protocol.EventSchema, ID: "dax:autoclave-1:e" + strconv.FormatUint(seq, 10), Gateway: "cssd-gw-1", Site: "dax",
		Device: "autoclave-1", At: at(int(seq - 5120)), Kind: kind, Seq: seq, PrevHash: prev}
}

// eventExamples holds one event of every kind, by file name.
func eventExamples() map[string]protocol.Event {
	out := map[string]protocol.Event{}
	add := func(e protocol.Event) { out["event."+string(e.Kind)+".example.json"] = e }

	e := event(protocol.EventPhase, 5122)
	e.Cycle, e.Phase, e.Program, e.Code = 1043, protocol.PhaseAirRemoval, "134-porous", 2
	add(e)
	e = event(protocol.EventAlarm, 5123)
	e.Cycle, e.Code, e.Text = 1043, 66, "steam supply pressure low"
	add(e)
	e = event(protocol.EventOnline, 5124)
	e.Cycle = 1043
	add(e)
	e = event(protocol.EventOffline, 5125)
	e.Cycle, e.Text = 1043, "read holding registers 0-11: i/o timeout"
	add(e)
	e = event(protocol.EventGap, 5126)
	e.From, e.To, e.FromSeq, e.ToSeq = at(-3600), at(-1800), 4100, 4890
	e.Text = "journal quota reached: 791 telemetry batches, seq 4100 to 4890, were thinned before delivery"
	add(e)
	e = event(protocol.EventGatewayAlarm, 5127)
	e.Cycle, e.Text = 1043, "printer report did not fully parse: line 12: no value for hold_time"
	add(e)
	e = event(protocol.EventImplausibleValue, 5130)
	e.Cycle, e.Field, e.Value, e.Registers = 1043, "temp", ptr(2.718387e+23), []uint16{26214, 16802}
	e.Text = "field temp (chamber_temperature) reads 2.71839e+23, outside the plausible range -20…200; not recorded; likely cause: wrong byte order"
	add(e)
	e = event(protocol.EventGarbage, 5131)
	e.Count, e.Text = 212, "212 bytes belonged to no report: \"*** PAPER LOW ***\""
	add(e)
	e = event(protocol.EventVerificationDisagreement, 5132)
	e.Cycle, e.Program, e.RecordID, e.Verdict, e.Checks = 1042, "134-porous", "dax:autoclave-1:1042", protocol.VerdictFail, []string{"temperature_band", "hold_time"}
	e.Text = "the device reported cycle 1042 (134-porous, record dax:autoclave-1:1042) passed, but sterigate's check of its data says fail"
	add(e)
	e = event(protocol.EventRelease, 5133)
	e.Cycle, e.RecordID, e.RecordHash, e.Decision, e.Operator = 1042, "dax:autoclave-1:1042", prev, protocol.DecisionReleased, "marie"
	e.Note, e.LoadRef, e.Supersedes, e.Confirmed = "BI negative", "L-2026-0042", "dax:autoclave-1:e5129", true
	add(e)
	e = event(protocol.EventCheckpoint, 5190)
	e.Count, e.CoversSeq, e.CoversHash = 56, 5189, prev
	e.Text = "signed checkpoint: covers seq 5134 to 5189 (56 entries written since the last signed one)"
	add(e)
	e = event(protocol.EventKeyRotation, 5191)
	e.NextKey, e.NextPublicKey = "34750f98bd59fcfc", "iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w="
	e.Text = "signing key 0a1b2c3d4e5f6a7b is replaced by key 34750f98bd59fcfc; this event is signed by 0a1b2c3d4e5f6a7b"
	add(e)
	e = event(protocol.EventJournalBreak, 9217)
	e.LastSeq, e.LastHash, e.Journal = 5120, prev, "3fa94c2b7e"
	e.Text = "the journal was damaged (write-ahead log damaged) and replaced by a new one: the last good entry of this device is seq 5120"
	add(e)
	return out
}

func telemetryExample() protocol.Telemetry {
	return protocol.Telemetry{Schema: protocol.TelemetrySchema, ID: "dax:autoclave-1:t5121", Gateway: "cssd-gw-1", Site: "dax",
		Device: "autoclave-1", Cycle: 1043, Seq: 5121, PrevHash: prev, Samples: []protocol.Sample{
			{At: at(1), TempC: 98.4, PressureKPa: 12.1, Phase: protocol.PhaseAirRemoval, Ch: map[string]float64{"drain_temp": 98.3}},
			{At: at(2), TempC: 98.9, PressureKPa: 11.7, Phase: protocol.PhaseAirRemoval, Ch: map[string]float64{"drain_temp": 98.6}},
		}}
}

func deviceStatusExample() protocol.DeviceStatus {
	return protocol.DeviceStatus{Device: "autoclave-1", Gateway: "cssd-gw-1", State: protocol.DeviceOnline, StateSince: at(-9000),
		Phase: protocol.PhaseSterilizing, Program: "134-porous", Cycle: 1043, Since: at(900),
		LastCycle: &protocol.LastCycle{ID: "dax:autoclave-1:1042", Cycle: 1042, Program: "134-porous", EndedAt: at(-120),
			Result: protocol.ResultPassed, Verdict: protocol.VerdictFail, Disagreement: true, Complete: true},
		At: at(900)}
}

func gatewayStatusExamples() map[string]protocol.GatewayStatus {
	return map[string]protocol.GatewayStatus{
		"gateway-status.online.example.json": {Gateway: "cssd-gw-1", Site: "dax", State: protocol.GatewayOnline, Version: "0.9.0",
			At: at(-9010), Alarms: []string{"journal_near_quota"}},
		// The Last Will: no time, no alarms.
		"gateway-status.offline.example.json": {Gateway: "cssd-gw-1", Site: "dax", State: protocol.GatewayOffline, Version: "0.9.0"},
	}
}

// testKey is the test key of docs/mqtt.md's worked example (32 bytes of
// 0x01): never use it.
func testKey() ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = 1
	}
	return ed25519.NewKeyFromSeed(seed)
}

func keyExample() evidence.KeyMessage {
	pub := testKey().Public().(ed25519.PublicKey)
	return evidence.NewPublicKey(pub, time.Date(2026, 11, 1, 6, 0, 0, 0, time.UTC), "0a1b2c3d4e5f6a7b").Message("cssd-gw-1", "dax")
}
