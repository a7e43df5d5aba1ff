package rtuslave

import (
	"testing"
	"time"
)

// BenchmarkReadRoundTrip measures one master request (function 3, all 24
// registers of the simulator's map) and its reply through the slave and a
// real pty, as the gateway's poll loop sees it. A pty has no line timing, so
// this is the software cost; on a real 19200-baud line the same exchange
// takes about 35 ms of transmission time.
func BenchmarkReadRoundTrip(b *testing.B) {
	port := startSlave(b, newFakeBank(1), Options{})
	master := newTestMaster(b, port.Path())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := master.readRegisters(1, 3, 0, fakeBankSize, time.Second); err != nil {
			b.Fatal(err)
		}
	}
}
