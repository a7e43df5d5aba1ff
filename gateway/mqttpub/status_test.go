package mqttpub

import (
	"context"
	"testing"
	"time"

	"github.com/sterigate/sterigate/protocol"
)

// A device's retained status goes out again only when it changed: one
// device's phase changes must not republish the statuses of the others,
// including those that finished a cycle (whose last_cycle was compared by
// pointer, so each was published again at every change of any device).
func TestStatusNotRepublishedWhenAnotherDeviceChanges(t *testing.T) {
	j := openJournal(t)
	ctx := context.Background()
	if err := j.RegisterDevices(ctx, "ac-1", "ac-2"); err != nil {
		t.Fatal(err)
	}
	if err := j.Cycle(ctx, cycleRecord("ac-1", 7)); err != nil {
		t.Fatal(err)
	}
	b := startMochi(t, "127.0.0.1:0")
	c := &collector{}
	if err := b.Subscribe("sterigate/#", c.add); err != nil {
		t.Fatal(err)
	}
	p, err := New(testOptions(b.URL()), j)
	if err != nil {
		t.Fatal(err)
	}
	runPublisher(t, p)
	eventually(t, 10*time.Second, "ac-1's status with its last cycle", func() bool {
		return deviceStatus(t, c, "ac-1").LastCycle != nil
	})
	count := func(device string) int {
		n := 0
		for _, m := range c.all() {
			if m.topic == "sterigate/dax/"+device+"/status" {
				n++
			}
		}
		return n
	}
	before := count("ac-1")
	phases := []protocol.PhaseName{protocol.PhasePreparation, protocol.PhaseHeating, protocol.PhaseSterilizing, protocol.PhaseDrying, protocol.PhaseComplete}
	for i, ph := range phases {
		ev := protocol.Event{Device: "ac-2", Kind: protocol.EventPhase, Phase: ph, Cycle: 3, At: time.Now().UTC()}
		if err := j.Event(ctx, ev); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "ac-2's status in phase "+string(ph), func() bool { return deviceStatus(t, c, "ac-2").Phase == ph })
		if n := count("ac-1"); n != before {
			t.Fatalf("after %d phase change(s) of ac-2, ac-1's unchanged status was published %d more time(s)", i+1, n-before)
		}
	}
}
