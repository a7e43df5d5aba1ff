package archive

import (
	"fmt"
	"os"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/sterigate/sterigate/gateway/mqttpub"
	"github.com/sterigate/sterigate/gateway/mqttpub/brokertest"
)

// bridgeConf adapts deploy/mosquitto-bridge.conf to a test: the central
// broker's loopback address, CA and the site user's password.
func bridgeConf(t *testing.T, central *brokertest.Broker, caFile, password string) string {
	t.Helper()
	b, err := os.ReadFile(brokertest.RepoFile("deploy/mosquitto-bridge.conf"))
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	set := func(key, value string) {
		re := regexp.MustCompile(`(?m)^` + key + `\s+.*$`)
		if !re.MatchString(conf) {
			t.Fatalf("deploy/mosquitto-bridge.conf has no %s line", key)
		}
		conf = re.ReplaceAllLiteralString(conf, key+" "+value)
	}
	set("address", central.Addr())
	set("bridge_cafile", caFile)
	set("remote_password", password)
	set("restart_timeout", "1") // the test's cut is seconds, not minutes
	return conf
}

// A site broker bridged to the central broker with the shipped bridge
// configuration: while the link to the centre is cut, the site's gateway
// keeps publishing to its own broker; when the link is back, everything
// reaches the archive at the centre and the receipts come back to the
// site.
func TestBridgedSiteBrokerLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("real Mosquitto (two) and PostgreSQL")
	}
	pk := brokertest.NewPKI(t)
	central := brokertest.StartShipped(t, brokertest.Setup{PKI: pk, Users: map[string]string{"dax": "dax-pw", "sterigate-archive": "archive-pw"}})
	bridge := bridgeConf(t, central, pk.CAFile, "dax-pw")
	site := brokertest.Start(t, func(port int, dir string) string {
		return fmt.Sprintf("%slistener %d 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\nautosave_interval 1\nlog_dest stderr\n%s\n", asMe(t), port, dir, bridge)
	})
	s, _ := openStore(t, StoreOptions{})
	pwFile := writeTemp(t, "archive-pw")
	a1 := startInstanceWith(t, mqttpub.Options{Brokers: []string{central.URL("ssl")}, Username: "sterigate-archive", PasswordFile: pwFile, CAFile: pk.CAFile}, s, "a1")
	waitFor(t, "the archive's subscription", 10*time.Second, func() bool { return a1.subscribed.Load() > 0 })

	gw := newGatewayClient(t, site, "dax", "gw1")
	c := newChain(t, "dax", "gw1", "ac1", 1)
	gw.publish(c.keyMessage(), true)
	const n = 40
	kinds := []string{"cycle", "telemetry", "telemetry", "event"}
	for i := range n {
		gw.publish(c.next(kinds[i%4], nil), false)
	}
	deadline := time.Now().Add(30 * time.Second)
	for gw.receipt("ac1") != n {
		if time.Now().After(deadline) {
			t.Fatalf("no receipt through the bridge (got %d)\nsite:\n%s\ncentral:\n%s\nchain rows %d", gw.receipt("ac1"), site.Log(), central.Log(), count(t, s, `SELECT count(*) FROM chain`))
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}

	// The link to the centre is cut (the central broker is down); the
	// site broker takes the gateway's messages and queues them.
	central.Stop(syscall.SIGTERM)
	for i := range n {
		gw.publish(c.next(kinds[i%4], nil), false)
	}
	<-time.After(3 * time.Second) // the cut lasts beyond the bridge's first reconnect attempts
	central.Start()
	waitFor(t, "the receipt after the cut", 60*time.Second, func() bool { return gw.receipt("ac1") == 2*n })
	if got := count(t, s, `SELECT count(*) FROM chain`); got != 2*n {
		t.Fatalf("%d chain rows, want %d", got, 2*n)
	}
	// The key may come after the first entry (it takes another path):
	// unknown_key is then recorded and resolved when it arrives.
	if got := count(t, s, `SELECT count(*) FROM chain_problems WHERE state = 'open'`); got != 0 {
		t.Fatalf("%d open chain problems", got)
	}
	if got := count(t, s, `SELECT count(*) FROM chain WHERE signature <> 'good' AND kind <> 'telemetry'`); got != 0 {
		t.Fatalf("%d records without a good signature", got)
	}
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "secret")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(content)
	f.Close()
	return f.Name()
}
