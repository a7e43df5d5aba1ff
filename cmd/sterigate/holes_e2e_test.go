package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sterigate/sterigate/protocol"
)

// TestEndToEndKilledInTheHold: the gateway is SIGKILLed in the middle of a
// cycle's hold and started again 2 s later (240 device seconds at 120×).
// The cycle's record must say what the gateway missed: complete false, a
// gateway_down hole over the kill, the end still seen, the device's verdict
// — and the simulator's time scale.
func TestEndToEndKilledInTheHold(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test runs a simulated cycle")
	}
	dir := t.TempDir()
	broker := startMosquitto(t, dir)
	sub := subscribe(t, broker.addr(), "sterigate/#")
	scenario := writeFile(t, filepath.Join(dir, "scenario.yaml"), `
pause: 30m
devices:
  - device: default
    repeat: false
    cycles: [{program: 134-prion}]
`)
	simAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	sim := startProc(t, "sim", binary, "sim", "--modbus-tcp", simAddr, "--speed", "120", "--seed", "11", "--scenario", scenario)
	sim.waitOutput(20*time.Second, "modbus-tcp listening on")
	cfg := writeFile(t, filepath.Join(dir, "sterigate.yaml"), fmt.Sprintf(`
gateway: {id: e2e-gw, site: dax, data_dir: %q}
mqtt: {brokers: ["tcp://%s"], keepalive: 2s}
devices:
  - {id: autoclave-1, driver: modbus-tcp, address: %q, profile: sim-autoclave,
     poll_interval: 100ms, timeout: 500ms, time_scale: 120}
`, filepath.Join(dir, "data"), broker.addr(), simAddr))
	gw := startProc(t, "gateway", binary, "run", "--config", cfg)

	inHold := func() bool {
		for _, m := range sub.messages() {
			var ev protocol.Event
			if strings.HasSuffix(m.Topic, "/event") && json.Unmarshal(m.Payload, &ev) == nil && ev.Kind == protocol.EventPhase && ev.Phase == protocol.PhaseSterilizing {
				return true
			}
		}
		return false
	}
	waitFor(t, 90*time.Second, "the hold (sterilizing phase event)", func() bool { mustRun(t, gw, sim); return inHold() })
	time.Sleep(time.Second) // into the 9 s (18 device minutes) of the hold
	gw.kill()
	killed := time.Now()
	time.Sleep(2 * time.Second) // the outage itself
	gw = startProc(t, "gateway", binary, "run", "--config", cfg)

	var rec protocol.CycleRecord
	waitFor(t, 90*time.Second, "the cycle record", func() bool {
		mustRun(t, gw, sim)
		for _, m := range sub.messages() {
			if strings.HasSuffix(m.Topic, "/cycle") && json.Unmarshal(m.Payload, &rec) == nil {
				return true
			}
		}
		return false
	})
	if rec.Complete || !rec.EndSeen || rec.Result != protocol.ResultPassed || rec.Program != "134-prion" {
		t.Errorf("record: complete %v, end seen %v, result %s, program %s; want incomplete, end seen, passed, 134-prion", rec.Complete, rec.EndSeen, rec.Result, rec.Program)
	}
	if rec.TimeScale != 120 {
		t.Errorf("time_scale = %v, want 120", rec.TimeScale)
	}
	var down []protocol.Hole
	for _, h := range rec.Holes {
		if h.Reason == protocol.HoleGatewayDown {
			down = append(down, h)
		}
	}
	if len(down) != 1 || !down[0].From.Before(killed) || !down[0].To.After(killed.Add(2*time.Second)) {
		t.Fatalf("holes = %+v; want one gateway_down hole over the kill at %v", rec.Holes, killed)
	}
	var holdSamples int
	for _, s := range rec.Samples {
		if s.Phase == protocol.PhaseSterilizing && (s.At.Before(down[0].From) || s.At.After(down[0].To)) {
			holdSamples++
		}
		if !s.At.After(down[0].From) || !s.At.Before(down[0].To) {
			continue
		}
		t.Errorf("sample at %v inside the hole %+v", s.At, down[0])
	}
	if holdSamples == 0 || len(rec.Channels) != 3 || rec.Samples[0].Ch["load_temp"] == 0 {
		t.Errorf("%d hold samples, channels %+v, first sample %+v", holdSamples, rec.Channels, rec.Samples[0])
	}
}
