package modbus_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sterigate/sterigate/drivers/cycle/cycletest"
	"github.com/sterigate/sterigate/drivers/modbus"
	"github.com/sterigate/sterigate/drivers/profile"
	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/sim"
	"github.com/sterigate/sterigate/sim/scenario"
)

// Regression: a sterilizer powered off behind a Modbus TCP→RTU gateway is
// answered for by the gateway with exception 11 on every poll. It used to
// stay "online" for ever (an exception meant "reachable"): no offline
// event, the retained status unchanged. The simulator serves its devices as
// units of one Modbus TCP port, as such a gateway does; device 2 answers
// exception 11 for the first simulated hours.
func TestUnitPoweredOffBehindAGatewayGoesOffline(t *testing.T) {
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
	wg.Add(1)
	go func() { defer wg.Done(); s.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })

	tr, err := modbus.NewTCPTransport(modbus.TCPConfig{Address: s.Addrs()[0], Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	prof, _ := profile.Builtin("sim-autoclave")
	sink := &cycletest.Sink{}
	l, err := modbus.NewLink(modbus.LinkConfig{Name: "gateway", Units: []modbus.UnitConfig{
		{Device: "ster-1", Unit: 1, Profile: prof, PollInterval: 10 * time.Millisecond},
		{Device: "ster-2", Unit: 2, Profile: prof, PollInterval: 10 * time.Millisecond},
	}}, tr, sink, &cycletest.Store{}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); l.Run(ctx) }()

	sink.WaitFor(t, 20*time.Second, "the offline event of the powered-off unit", func(s *cycletest.Sink) bool {
		return eventsOf(s, protocol.EventOffline, "ster-2") == 1
	})
	if st := l.Units()[1].Status(); st.State != protocol.DeviceOffline {
		t.Fatalf("status of the powered-off unit: %+v", st)
	}
	for _, e := range sink.EventsOf(protocol.EventOffline) {
		if e.Device == "ster-2" && e.Text == "" {
			t.Errorf("the offline event does not say why: %+v", e)
		}
	}
	if eventsOf(sink, protocol.EventOffline, "ster-1") != 0 || unitStats(l, "ster-1").GoodPolls == 0 {
		t.Fatalf("the powered unit: %+v", unitStats(l, "ster-1"))
	}
	if st := unitStats(l, "ster-2"); st.ExceptionsByCode[11] < 3 || st.Offline != true {
		t.Fatalf("powered-off unit stats %+v", st)
	}
}
