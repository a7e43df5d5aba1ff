package modbus

import (
	"testing"

	"github.com/sterigate/sterigate/drivers/profile"
)

// The commented sample users copy must always load, and read in two
// requests (the discrete input, and input registers 100-123 in one block).
func TestSampleProfileLoads(t *testing.T) {
	p, err := profile.Load("sample-profile.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "steamco-sc6" || len(p.Blocks) != 2 || len(p.Alarms) != 5 || p.CycleEnd.On != profile.EndOnLastCycleChange {
		t.Fatalf("name %s, blocks %+v, %d alarms, cycle end %s", p.Name, p.Blocks, len(p.Alarms), p.CycleEnd.On)
	}
}
