package sim

import "testing"

// Port 0 for a simulator with one port per device must give every device
// its own port: the load benchmark runs 200 of them per simulator, and a
// port handed out twice made the simulator exit with "address already in
// use".
func TestReserveAddrsGivesEveryDeviceItsOwnPort(t *testing.T) {
	addrs, err := reserveAddrs("127.0.0.1:0", true, 247)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for i, a := range addrs {
		if j, dup := seen[a]; dup {
			t.Fatalf("devices %d and %d both got %s", j+1, i+1, a)
		}
		seen[a] = i
	}
	if len(addrs) != 247 {
		t.Fatalf("%d addresses, want 247", len(addrs))
	}
}
