package mqttpub

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sterigate/sterigate/gateway/journal"
	"github.com/sterigate/sterigate/gateway/mqttpub/brokertest"
	"github.com/sterigate/sterigate/protocol"
)

func gatewayState(t testing.TB, c *collector) string {
	b, ok := c.last("sterigate/dax/gateway/gw-1/status")
	if !ok {
		return ""
	}
	var st protocol.GatewayStatus
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("gateway status %s: %v", b, err)
	}
	return st.State
}

func deviceStatus(t testing.TB, c *collector, device string) protocol.DeviceStatus {
	var st protocol.DeviceStatus
	if b, ok := c.last("sterigate/dax/" + device + "/status"); ok {
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatalf("device status %s: %v", b, err)
		}
	}
	return st
}

func TestPublishesEverythingOnceInOrderAndMarksDelivered(t *testing.T) {
	j := openJournal(t)
	fill(t, j, []string{"ac-1", "ac-2", "ac-3"}, 1, 5, 3)
	total := pendingCount(t, j)
	b := startMochi(t, "127.0.0.1:0")
	c := &collector{}
	if err := b.Subscribe("sterigate/#", c.add); err != nil {
		t.Fatal(err)
	}
	var delivered atomic.Int64
	opts := testOptions(b.URL())
	opts.Window = 8
	opts.OnDelivered = func(journal.Entry) { delivered.Add(1) }
	p, err := New(opts, j)
	if err != nil {
		t.Fatal(err)
	}
	runPublisher(t, p)
	eventually(t, 10*time.Second, "the backlog to drain", func() bool { return pendingCount(t, j) == 0 })
	if dups := checkDelivery(t, j, c.all()); dups != 0 {
		t.Fatalf("%d duplicates without any outage", dups)
	}
	eventually(t, 5*time.Second, "OnDelivered for every entry", func() bool { return delivered.Load() == int64(total) })
	if s := gatewayState(t, c); s != protocol.GatewayOnline {
		t.Fatalf("gateway status %q, want online", s)
	}
	if !p.Connected() {
		t.Fatal("Connected() is false while publishing")
	}
	// Everything above was journaled before the connection: replayed.
	for _, m := range c.all() {
		if !m.retained && !strings.HasSuffix(m.topic, "/status") && !bytes.HasPrefix(m.payload, []byte("{"+ReplayMarker)) {
			t.Fatalf("backlog message on %s not marked as replay: %.80s", m.topic, m.payload)
		}
	}
	// A record journaled while connected is live: no marker.
	if err := j.Cycle(context.Background(), cycleRecord("ac-1", 100)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the live record", func() bool { _, ok := c.last("sterigate/dax/ac-1/cycle"); return ok && c.ids()["dax:ac-1:100"] == 1 })
	live, _ := c.last("sterigate/dax/ac-1/cycle")
	if bytes.Contains(live, []byte(ReplayMarker)) {
		t.Fatalf("live record marked as replay: %.80s", live)
	}
}

func TestBrokerThatNeverAcknowledgesGetsNothingMarkedDelivered(t *testing.T) {
	for _, tc := range []struct {
		name      string
		dropAfter int
		ack       time.Duration
	}{
		{"connection dropped before PUBACK", 9, 5 * time.Second},
		{"PUBACK never comes", 1 << 30, 300 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := openJournal(t)
			fill(t, j, []string{"ac-1"}, 1, 3, 1) // 9 entries
			fake := startFakeBroker(t, tc.dropAfter)
			opts := testOptions(fake.url())
			opts.AckTimeout = tc.ack
			var marked atomic.Int64
			opts.OnDelivered = func(journal.Entry) { marked.Add(1) }
			p, err := New(opts, j)
			if err != nil {
				t.Fatal(err)
			}
			stop := runPublisher(t, p)
			// Two connections that each received all 9 entries: the
			// second restarted from the oldest undelivered one.
			eventually(t, 15*time.Second, "a second connection re-sending everything", func() bool {
				conns, pubs := fake.counts()
				return conns >= 3 && pubs >= 18
			})
			stop()
			if n := pendingCount(t, j); n != 9 {
				t.Fatalf("%d entries pending after a broker that never acknowledged, want all 9", n)
			}
			delivered, err := j.DeliveredKept(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if delivered != 0 || marked.Load() != 0 {
				t.Fatalf("%d entries marked delivered (%d callbacks) without a PUBACK", delivered, marked.Load())
			}
			fake.mu.Lock()
			first := fake.publishes
			fake.mu.Unlock()
			var dataTopics []string
			for _, tp := range first {
				if !strings.HasSuffix(tp, "/status") {
					dataTopics = append(dataTopics, tp)
				}
			}
			if dataTopics[0] != dataTopics[9] {
				t.Fatalf("second connection began with %s, want the oldest entry again (%s)", dataTopics[9], dataTopics[0])
			}
		})
	}
}

func TestFailsOverToTheNextBroker(t *testing.T) {
	j := openJournal(t)
	fill(t, j, []string{"ac-1"}, 1, 2, 1)
	dead := fmt.Sprintf("tcp://127.0.0.1:%d", brokertest.FreePort(t))
	b := startMochi(t, "127.0.0.1:0")
	c := &collector{}
	b.Subscribe("sterigate/#", c.add)
	p, err := New(testOptions(dead, b.URL()), j)
	if err != nil {
		t.Fatal(err)
	}
	runPublisher(t, p)
	eventually(t, 10*time.Second, "delivery through the second broker", func() bool { return pendingCount(t, j) == 0 })
	checkDelivery(t, j, c.all())
}

func TestLastWillAndStatusRepublishAfterReconnect(t *testing.T) {
	j := openJournal(t)
	ctx := context.Background()
	if err := j.RegisterDevices(ctx, "ac-1", "ac-2"); err != nil {
		t.Fatal(err)
	}
	if err := j.Event(ctx, protocol.Event{Device: "ac-1", Kind: protocol.EventOnline}); err != nil {
		t.Fatal(err)
	}
	b1 := startMochi(t, "127.0.0.1:0")
	addr := b1.Addr()
	c1 := &collector{}
	b1.Subscribe("sterigate/#", c1.add)
	px := startProxy(t, addr)
	p, err := New(testOptions(px.url()), j)
	if err != nil {
		t.Fatal(err)
	}
	runPublisher(t, p)
	eventually(t, 10*time.Second, "online status and device statuses", func() bool {
		return gatewayState(t, c1) == protocol.GatewayOnline &&
			deviceStatus(t, c1, "ac-1").State == protocol.DeviceOnline &&
			deviceStatus(t, c1, "ac-2").State == protocol.DeviceUnknown
	})

	// A status change is published while connected.
	if err := j.Event(ctx, protocol.Event{Device: "ac-1", Kind: protocol.EventPhase, Phase: protocol.PhaseSterilizing, Cycle: 8}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the changed status", func() bool {
		st := deviceStatus(t, c1, "ac-1")
		return st.Phase == protocol.PhaseSterilizing && st.Cycle == 8
	})

	// The link dies without a DISCONNECT: the broker publishes the Will.
	px.Pause(true)
	px.Cut()
	eventually(t, 10*time.Second, "the Last Will (offline)", func() bool { return gatewayState(t, c1) == protocol.GatewayOffline })
	eventually(t, 5*time.Second, "the publisher to notice", func() bool { return !p.Connected() })

	// The broker is replaced by a fresh one with no retained messages;
	// entries and a status change happen during the outage.
	b1.Close()
	fill(t, j, []string{"ac-1", "ac-2"}, 1, 3, 2)
	if err := j.Event(ctx, protocol.Event{Device: "ac-2", Kind: protocol.EventOffline, Text: "no answer from 10.0.0.7:502"}); err != nil {
		t.Fatal(err)
	}
	b2 := startMochi(t, addr)
	c2 := &collector{}
	b2.Subscribe("sterigate/#", c2.add)
	px.Pause(false)
	eventually(t, 10*time.Second, "statuses republished on the new broker", func() bool {
		return gatewayState(t, c2) == protocol.GatewayOnline &&
			deviceStatus(t, c2, "ac-1").Phase == protocol.PhaseSterilizing &&
			deviceStatus(t, c2, "ac-2").State == protocol.DeviceOffline
	})
	eventually(t, 10*time.Second, "the outage backlog to drain", func() bool { return pendingCount(t, j) == 0 })
	checkDelivery(t, j, append(c1.all(), c2.all()...))
}

func TestGracefulStopPublishesOffline(t *testing.T) {
	j := openJournal(t)
	b := startMochi(t, "127.0.0.1:0")
	c := &collector{}
	b.Subscribe("sterigate/#", c.add)
	p, err := New(testOptions(b.URL()), j)
	if err != nil {
		t.Fatal(err)
	}
	stop := runPublisher(t, p)
	eventually(t, 10*time.Second, "online", func() bool { return gatewayState(t, c) == protocol.GatewayOnline })
	stop()
	eventually(t, 5*time.Second, "offline after stop", func() bool { return gatewayState(t, c) == protocol.GatewayOffline })
	if p.Connected() {
		t.Fatal("Connected() true after Run returned")
	}
}

func TestUrgentFirstAndLiveRecordDuringPacedReplay(t *testing.T) {
	j := openJournal(t)
	ctx := context.Background()
	const backlog = 400
	for range backlog {
		if err := j.Telemetry(ctx, telemetry("ac-1", 10)); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Cycle(ctx, cycleRecord("ac-1", 1)); err != nil {
		t.Fatal(err)
	}
	b := startMochi(t, "127.0.0.1:0")
	c := &collector{}
	b.Subscribe("sterigate/#", c.add)
	opts := testOptions(b.URL())
	opts.ReplayRate = 400 // the backlog takes about a second
	p, err := New(opts, j)
	if err != nil {
		t.Fatal(err)
	}
	runPublisher(t, p)
	count := func(topicSuffix string) int {
		n := 0
		for _, m := range c.all() {
			if strings.HasSuffix(m.topic, topicSuffix) {
				n++
			}
		}
		return n
	}
	eventually(t, 10*time.Second, "some backlog telemetry", func() bool { return count("/telemetry") >= 20 })
	// The backlogged cycle record went before the telemetry.
	for _, m := range c.all() {
		if strings.HasSuffix(m.topic, "/telemetry") {
			t.Fatalf("telemetry %.60s arrived before the backlogged cycle record", m.payload)
		}
		if strings.HasSuffix(m.topic, "/cycle") {
			break
		}
	}
	// A cycle that ends during the replay, and live telemetry, overtake
	// the rest of the backlog.
	if err := j.Cycle(ctx, cycleRecord("ac-1", 2)); err != nil {
		t.Fatal(err)
	}
	if err := j.Telemetry(ctx, telemetry("ac-1", 1)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the live record", func() bool { return c.ids()["dax:ac-1:2"] == 1 && count("/telemetry") > 0 })
	if n := count("/telemetry"); n >= backlog {
		t.Fatalf("live record arrived only after the whole backlog (%d telemetry)", n)
	}
	eventually(t, 10*time.Second, "live telemetry before the backlog ends", func() bool {
		for _, m := range c.all() {
			if strings.HasSuffix(m.topic, "/telemetry") && !bytes.Contains(m.payload, []byte(ReplayMarker)) {
				return true
			}
		}
		return false
	})
	if n := count("/telemetry"); n >= backlog+1 {
		t.Fatalf("live telemetry arrived only after the whole backlog")
	}
	eventually(t, 10*time.Second, "the backlog to drain", func() bool { return pendingCount(t, j) == 0 })
	checkDelivery(t, j, c.all())
}

func TestOptionsErrorsNameTheSetting(t *testing.T) {
	j := openJournal(t)
	for _, tc := range []struct {
		mut  func(*Options)
		want string
	}{
		{func(o *Options) { o.Brokers = nil }, "brokers"},
		{func(o *Options) { o.Brokers = []string{"http://x:1"} }, `"http"`},
		{func(o *Options) { o.Brokers = []string{"tcp://x"} }, "no port"},
		{func(o *Options) { o.KeepAlive = time.Minute }, "keepalive 1m0s"},
		{func(o *Options) { o.CAFile = "/ca.pem" }, "ssl://"},
		{func(o *Options) { o.CertFile = "c.pem" }, "both or neither"},
		{func(o *Options) { o.PasswordEnv = "STERIGATE_TEST_UNSET_VAR" }, "STERIGATE_TEST_UNSET_VAR"},
		{func(o *Options) { o.PasswordFile = "/nonexistent/pw" }, "password_file"},
		{func(o *Options) { o.Site = "a/b" }, "a/b"},
	} {
		o := testOptions("tcp://127.0.0.1:1883")
		tc.mut(&o)
		_, err := New(o, j)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want an error containing %q, got %v", tc.want, err)
		}
	}
}

func TestPasswordNeverLogged(t *testing.T) {
	j := openJournal(t)
	var buf syncBuffer
	o := testOptions(fmt.Sprintf("tcp://127.0.0.1:%d", brokertest.FreePort(t)))
	t.Setenv("STERIGATE_TEST_MQTT_PW", "s3cret-pw")
	o.Username, o.PasswordEnv = "gw", "STERIGATE_TEST_MQTT_PW"
	o.Logger = newTextLogger(&buf)
	p, err := New(o, j)
	if err != nil {
		t.Fatal(err)
	}
	if p.password != "s3cret-pw" {
		t.Fatal("password not read from the environment")
	}
	stop := runPublisher(t, p)
	eventually(t, 5*time.Second, "a logged connection failure", func() bool { return strings.Contains(buf.String(), "connection ended") })
	stop()
	if strings.Contains(buf.String(), "s3cret-pw") {
		t.Fatal("the password appears in the log")
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// The log says, once, when the replay of what waited in the journal is
// over and how many entries it took; with one broker a lost connection
// is "reconnecting", not "trying the next broker".
func TestLogsTheFinishedReplayAndReconnects(t *testing.T) {
	j := openJournal(t)
	fill(t, j, []string{"ac-1", "ac-2"}, 1, 3, 4)
	total := pendingCount(t, j)
	b := startMochi(t, "127.0.0.1:0")
	var logs syncBuffer
	opts := testOptions(b.URL())
	opts.Logger = newTextLogger(&logs)
	p, err := New(opts, j)
	if err != nil {
		t.Fatal(err)
	}
	stop := runPublisher(t, p)
	eventually(t, 10*time.Second, "the replay-finished line", func() bool { return strings.Contains(logs.String(), "replay finished") })
	eventually(t, 5*time.Second, "the replay marked delivered", func() bool { return pendingCount(t, j) == 0 })
	if want := fmt.Sprintf("entries=%d", total); !strings.Contains(logs.String(), want) {
		t.Errorf("replay line lacks %s:\n%s", want, logs.String())
	}
	// A record journaled live is not a replay: no second line.
	if err := j.Cycle(context.Background(), cycleRecord("ac-1", 100)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the live record delivered", func() bool { return pendingCount(t, j) == 0 })
	stop()
	if n := strings.Count(logs.String(), "replay finished"); n != 1 {
		t.Errorf("%d replay-finished lines, want 1:\n%s", n, logs.String())
	}

	// One broker, unreachable: reconnecting, never "the next broker".
	var logs2 syncBuffer
	opts = testOptions(fmt.Sprintf("tcp://127.0.0.1:%d", brokertest.FreePort(t)))
	opts.Logger = newTextLogger(&logs2)
	p, err = New(opts, j)
	if err != nil {
		t.Fatal(err)
	}
	runPublisher(t, p)
	eventually(t, 10*time.Second, "a failed connection logged", func() bool { return strings.Contains(logs2.String(), "mqtt connection ended") })
	if strings.Contains(logs2.String(), "next broker") || !strings.Contains(logs2.String(), "reconnecting") {
		t.Errorf("with one broker the log says:\n%s", logs2.String())
	}
	if p.UnreachableSince().IsZero() || p.Connected() {
		t.Errorf("UnreachableSince %s, Connected %v with no broker", p.UnreachableSince(), p.Connected())
	}
}
