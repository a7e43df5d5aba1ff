package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sterigate/sterigate/gateway/config"
	"github.com/sterigate/sterigate/gateway/journal"
	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/sim"
	"github.com/sterigate/sterigate/sim/scenario"
)

// Regression, through the gateway's own wiring: a sterilizer powered off
// behind a Modbus TCP gateway (exception 11 on every poll) used to stay
// "online" in the retained device status for ever. The link built by
// buildLinks journals an offline event, and the device status the publisher
// retains says offline, with the reason.
func TestPoweredOffBehindAGatewayRetainedStatusOffline(t *testing.T) {
	sc, err := scenario.Parse("powered-off.yaml", []byte(`
devices:
  - device: 2
    cycles: [{program: 134-porous}]
    comm: [{kind: exception, exception: 11, at: 0s, duration: 100h}]
`))
	if err != nil {
		t.Fatal(err)
	}
	s, err := sim.New(sim.Options{Devices: 2, ModbusTCP: "127.0.0.1:0", Scenario: sc})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(1)
	go func() { defer wg.Done(); s.Run(ctx) }()

	dir := t.TempDir()
	cfg, err := config.Parse(filepath.Join(dir, "gw.yaml"), []byte(fmt.Sprintf(`
gateway: {id: gw, site: dax, data_dir: %q}
mqtt: {brokers: ["tcp://127.0.0.1:1883"]}
devices:
  - {id: ster-1, driver: modbus-tcp, address: %q, unit: 1, profile: sim-autoclave, poll_interval: 20ms}
  - {id: ster-2, driver: modbus-tcp, address: %q, unit: 2, profile: sim-autoclave, poll_interval: 20ms}
`, dir, s.Addrs()[0], s.Addrs()[0])))
	if err != nil {
		t.Fatal(err)
	}
	j, err := journal.Open(filepath.Join(dir, "journal.db"), journal.Options{Gateway: "gw", Site: "dax"})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	links, err := buildLinks(cfg, j, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if len(links) != 1 {
		t.Fatalf("%d links for two units behind one address, want 1", len(links))
	}
	wg.Add(1)
	go func() { defer wg.Done(); links[0].run(ctx) }()

	status := func(device string) protocol.DeviceStatus {
		sts, err := j.DeviceStatuses(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range sts {
			if st.Device == device {
				return st
			}
		}
		return protocol.DeviceStatus{}
	}
	waitFor(t, 20*time.Second, "the powered-off device's retained status offline", func() bool {
		return status("ster-2").State == protocol.DeviceOffline
	})
	if st := status("ster-2"); st.Error == "" {
		t.Errorf("offline status without the reason: %+v", st)
	}
	waitFor(t, 20*time.Second, "the powered device online", func() bool { return status("ster-1").State == protocol.DeviceOnline })
	events, err := j.Entries(ctx, "ster-2", journal.KindEvent)
	if err != nil {
		t.Fatal(err)
	}
	offline := 0
	for _, e := range events {
		if bytes.Contains(e.Payload, []byte(`"kind":"offline"`)) && bytes.Contains(e.Payload, []byte("exception 11")) {
			offline++
		}
	}
	if offline != 1 {
		t.Fatalf("%d offline events saying exception 11 in the journal, want 1", offline)
	}
}
