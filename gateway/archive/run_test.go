package archive

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sterigate/sterigate/gateway/mqttpub"
	"github.com/sterigate/sterigate/gateway/mqttpub/brokertest"
	"github.com/sterigate/sterigate/protocol"
)

func plainBroker(t *testing.T) *brokertest.Broker {
	return brokertest.Start(t, func(port int, dir string) string {
		return fmt.Sprintf("%slistener %d 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\nautosave_on_changes true\nautosave_interval 1\nlog_dest stderr\n", asMe(t), port, dir)
	})
}

// asMe is the mosquitto.conf line that keeps Mosquitto, started as root,
// from switching to its own user, which cannot write the test's directory.
func asMe(t testing.TB) string {
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return "user " + me.Username + "\n"
}

// instance runs one archive until its context ends.
type instance struct {
	cancel     context.CancelFunc
	done       chan struct{}
	stored     atomic.Int64
	subscribed atomic.Int64
}

func startInstance(t *testing.T, broker *brokertest.Broker, s *Store, id string) *instance {
	t.Helper()
	return startInstanceWith(t, mqttpub.Options{Brokers: []string{broker.URL("tcp")}}, s, id)
}

// startInstanceWith starts an archive instance with the connection
// settings of mq (brokers, credentials, TLS).
func startInstanceWith(t *testing.T, mq mqttpub.Options, s *Store, id string) *instance {
	t.Helper()
	mq.Gateway, mq.Site, mq.TopicRoot = id, id, testRoot
	mq.MinBackoff, mq.MaxBackoff = 50*time.Millisecond, 500*time.Millisecond
	conn, err := mqttpub.NewConnector(mq)
	if err != nil {
		t.Fatal(err)
	}
	in := &instance{done: make(chan struct{})}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, err := New(Options{ID: id, ClientID: "sterigate-archive-" + id, Group: "g", TopicRoot: testRoot, Connector: conn,
		GapAlarmAfter: time.Minute, Logger: log, OnCommit: func(r BatchResult) { in.stored.Add(int64(r.Stored)) },
		OnSubscribed: func() { in.subscribed.Add(1) }}, s)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in.cancel = cancel
	go func() { defer close(in.done); a.Run(ctx) }()
	t.Cleanup(in.stop)
	return in
}

func (in *instance) stop() { in.cancel(); <-in.done }

// gatewayClient publishes like a gateway and collects its receipts.
type gatewayClient struct {
	t        *testing.T
	client   paho.Client
	mu       sync.Mutex
	receipts map[string]uint64
}

func newGatewayClient(t *testing.T, broker *brokertest.Broker, site, gateway string) *gatewayClient {
	g := &gatewayClient{t: t, receipts: map[string]uint64{}}
	o := paho.NewClientOptions().AddBroker(broker.URL("tcp")).SetClientID("gw-" + gateway).SetAutoReconnect(false)
	g.client = paho.NewClient(o)
	if err := mqttpub.Wait(context.Background(), g.client.Connect(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.client.Disconnect(0) })
	tok := g.client.Subscribe(protocol.Topics{Root: testRoot, Site: site}.GatewayReceipt(gateway), 1, func(_ paho.Client, m paho.Message) {
		var r protocol.Receipt
		if json.Unmarshal(m.Payload(), &r) != nil || r.Schema != protocol.ReceiptSchema {
			t.Errorf("bad receipt %s", m.Payload())
			return
		}
		g.mu.Lock()
		for d, seq := range r.Devices {
			g.receipts[d] = max(g.receipts[d], seq)
		}
		g.mu.Unlock()
	})
	if err := mqttpub.Wait(context.Background(), tok, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	return g
}

func (g *gatewayClient) publish(m Message, retained bool) {
	if err := mqttpub.Wait(context.Background(), g.client.Publish(m.Topic, 1, retained, m.Payload), 5*time.Second); err != nil {
		g.t.Fatal(err)
	}
}

func (g *gatewayClient) receipt(device string) uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.receipts[device]
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

// Two instances share the messages through the shared subscription, every
// entry is stored once, and the gateway's receipts reach the last seq. An
// instance stopped while messages come finds its share waiting in its
// persistent session when it comes back.
func TestArchiveInstancesShareAndTakeOver(t *testing.T) {
	if testing.Short() {
		t.Skip("real Mosquitto and PostgreSQL")
	}
	broker := plainBroker(t)
	s, _ := openStore(t, StoreOptions{})
	a1 := startInstance(t, broker, s, "a1")
	a2 := startInstance(t, broker, s, "a2")
	gw := newGatewayClient(t, broker, "dax", "gw1")
	c1 := newChain(t, "dax", "gw1", "ac1", 1)
	c2 := newChain(t, "dax", "gw1", "ac2", 1)
	gw.publish(c1.keyMessage(), true)
	// Both instances subscribed before anything is shared out.
	waitFor(t, "both subscriptions", 10*time.Second, func() bool { return a1.subscribed.Load() > 0 && a2.subscribed.Load() > 0 })
	const n = 60
	kinds := []string{"cycle", "telemetry", "telemetry", "event"}
	for i := range n {
		gw.publish(c1.next(kinds[i%4], nil), false)
		gw.publish(c2.next(kinds[(i+1)%4], nil), false)
	}
	waitFor(t, "receipts for both devices", 20*time.Second, func() bool { return gw.receipt("ac1") == n && gw.receipt("ac2") == n })
	if a1.stored.Load() == 0 || a2.stored.Load() == 0 {
		t.Fatalf("the load was not shared: a1 stored %d, a2 %d", a1.stored.Load(), a2.stored.Load())
	}

	a2.stop()
	for i := range n {
		gw.publish(c1.next(kinds[i%4], nil), false)
	}
	// a2's share waits in its session; a1 alone cannot complete ac1.
	a2 = startInstance(t, broker, s, "a2")
	waitFor(t, "receipt after a2 came back", 20*time.Second, func() bool { return gw.receipt("ac1") == 2*n })
	if got := count(t, s, `SELECT count(*) FROM chain`); got != 3*n {
		t.Fatalf("%d chain rows, want %d", got, 3*n)
	}
	// The key and the first entries come on different subscriptions: an
	// entry may be stored before its key (unknown_key, resolved when the
	// key comes); nothing may stay open.
	if got := count(t, s, `SELECT count(*) FROM chain_problems WHERE state = 'open' OR code <> 'unknown_key'`); got != 0 {
		t.Fatalf("%d chain problems, want none open", got)
	}
}

func benchBroker(b *testing.B) *brokertest.Broker {
	return brokertest.Start(b, func(port int, dir string) string {
		return fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\nlog_dest stderr\n", port)
	})
}
