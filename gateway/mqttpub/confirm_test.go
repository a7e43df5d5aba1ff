package mqttpub

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sterigate/sterigate/gateway/journal"
	"github.com/sterigate/sterigate/gateway/mqttpub/brokertest"
)

const (
	gatewayPassword  = "gw-secret-7d1f"
	consumerPassword = "consumer-secret-2b9e"
)

// shippedBroker runs Mosquitto with deploy/mosquitto.conf: TLS only,
// passwords, the ACL. The gateway's user is its site, "dax".
func shippedBroker(t *testing.T, acl string) (*brokertest.Broker, *brokertest.PKI) {
	t.Helper()
	pk := brokertest.NewPKI(t)
	b := brokertest.StartShipped(t, brokertest.Setup{PKI: pk, ACL: acl,
		Users: map[string]string{"dax": gatewayPassword, "cssd-dashboard": consumerPassword}})
	return b, pk
}

// consumer is a dashboard's subscriber: user cssd-dashboard, a fixed
// client id and a persistent session, QoS 1, so the broker queues for it
// while it is away.
type consumer struct {
	c      *collector
	client paho.Client
	ok     *subscribed
}

func connectConsumer(t *testing.T, b *brokertest.Broker, caFile, clientID string, c *collector) *consumer {
	t.Helper()
	cons := &consumer{c: c, ok: &subscribed{}}
	o := paho.NewClientOptions().AddBroker(b.URL("ssl")).SetClientID(clientID).SetCleanSession(false).
		SetUsername("cssd-dashboard").SetPassword(consumerPassword).SetTLSConfig(brokertest.Trusting(t, caFile)).
		SetAutoReconnect(false).SetOrderMatters(true)
	o.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { c.add(m.Topic(), m.Payload(), m.Retained()) })
	cons.client = paho.NewClient(o)
	tok := cons.client.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("consumer connect: %v\n%s", tok.Error(), b.Log())
	}
	sub := cons.client.Subscribe("sterigate/#", 1, func(_ paho.Client, m paho.Message) { c.add(m.Topic(), m.Payload(), m.Retained()) })
	if !sub.WaitTimeout(10*time.Second) || sub.Error() != nil {
		t.Fatalf("consumer subscribe: %v", sub.Error())
	}
	t.Cleanup(func() { cons.client.Disconnect(100) })
	return cons
}

func gatewayOptions(b *brokertest.Broker, caFile string) Options {
	o := testOptions(b.URL("ssl"))
	o.Username, o.Password, o.CAFile = "dax", gatewayPassword, caFile
	o.ConfirmTimeout = time.Second
	return o
}

// urgentIDs returns the ids of the cycle records and events a collector
// received, replay marker or not.
func urgentIDs(c *collector) map[string]bool {
	out := map[string]bool{}
	for _, m := range c.all() {
		if strings.HasSuffix(m.topic, "/cycle") || strings.HasSuffix(m.topic, "/event") {
			var f struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(m.payload, &f) == nil {
				out[f.ID] = true
			}
		}
	}
	return out
}

func urgentEntries(t *testing.T, j *journal.Journal) []journal.Entry {
	t.Helper()
	all, err := j.Entries(context.Background(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	var out []journal.Entry
	for _, e := range all {
		if e.Kind != journal.KindTelemetry {
			out = append(out, e)
		}
	}
	return out
}

// TestACLThatDeniesIsCaughtAndEverythingIsSentAgain runs the shipped
// broker with an ACL that denies the gateway its topics: Mosquitto
// acknowledges every publish and routes none. The gateway must not take
// the PUBACKs for delivery: nothing comes back on its own subscription,
// so it raises mqtt_unconfirmed and publishes again; once the ACL is
// fixed, every cycle record and event reaches the consumer.
func TestACLThatDeniesIsCaughtAndEverythingIsSentAgain(t *testing.T) {
	wrong := "user dax\ntopic readwrite sterigate/elsewhere/#\nuser cssd-dashboard\ntopic read sterigate/#\n"
	b, pk := shippedBroker(t, wrong)
	c := &collector{}
	connectConsumer(t, b, pk.CAFile, "dashboard-acl", c)
	j := openJournal(t)
	fill(t, j, []string{"ac-1", "ac-2"}, 1, 3, 2)
	p, err := New(gatewayOptions(b, pk.CAFile), j)
	if err != nil {
		t.Fatal(err)
	}
	runPublisher(t, p)
	eventually(t, 15*time.Second, "PUBACKs for everything", func() bool { return pendingCount(t, j) == 0 })
	eventually(t, 15*time.Second, "the mqtt_unconfirmed alarm", func() bool { return slices.Contains(p.Alarms(), AlarmUnconfirmed) })
	if got := urgentIDs(c); len(got) != 0 {
		t.Fatalf("the consumer received %d records under the denying ACL", len(got))
	}
	st, _ := j.Stats(context.Background())
	if want := len(urgentEntries(t, j)); st.Unconfirmed != int64(want) {
		t.Fatalf("%d unconfirmed entries, want all %d cycle records and events", st.Unconfirmed, want)
	}

	b.SetACL(string(mustRead(t, brokertest.RepoFile("deploy/mosquitto.acl"))))
	eventually(t, 30*time.Second, "every cycle record and event at the consumer after the ACL was fixed", func() bool {
		got := urgentIDs(c)
		for _, e := range urgentEntries(t, j) {
			if !got[e.RecordID] {
				return false
			}
		}
		return true
	})
	eventually(t, 15*time.Second, "every entry confirmed and the alarm cleared", func() bool {
		st, _ := j.Stats(context.Background())
		return st.Unconfirmed == 0 && !slices.Contains(p.Alarms(), AlarmUnconfirmed)
	})
	// What came again came marked as a replay, and byte for byte.
	for _, m := range c.all() {
		if strings.HasSuffix(m.topic, "/cycle") && !strings.HasPrefix(string(m.payload), "{"+ReplayMarker) {
			t.Fatalf("a record sent again without the replay marker: %.80s", m.payload)
		}
	}
}

// TestShippedBrokerKilledKeepsWhatItConfirmed: a dashboard with a
// persistent session is away while cycle records are published; the
// broker is SIGKILLed once the gateway has them confirmed. With the shipped
// configuration (saved after every change) the dashboard still gets every
// one when it comes back; with Mosquitto's default (saved every 30 min)
// they are gone.
func TestShippedBrokerKilledKeepsWhatItConfirmed(t *testing.T) {
	b, pk := shippedBroker(t, "")
	c := &collector{}
	cons := connectConsumer(t, b, pk.CAFile, "dashboard-persistent", c)
	cons.client.Disconnect(100) // away; the broker queues for it

	j := openJournal(t)
	p, err := New(gatewayOptions(b, pk.CAFile), j)
	if err != nil {
		t.Fatal(err)
	}
	stop := runPublisher(t, p)
	ctx := context.Background()
	for c := range uint64(9) {
		if err := j.Cycle(ctx, cycleRecord("ac-1", 100+c)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 15*time.Second, "every record confirmed", func() bool {
		es, _ := j.Entries(ctx, "ac-1", journal.KindCycle)
		for _, e := range es {
			if e.ConfirmedAt.IsZero() {
				return false
			}
		}
		return len(es) == 9
	})
	stop()
	b.Stop(syscall.SIGKILL)
	b.Start()
	connectConsumer(t, b, pk.CAFile, "dashboard-persistent", c)
	eventually(t, 15*time.Second, "the 9 records queued for the dashboard before the broker was killed", func() bool {
		n := 0
		for id := range urgentIDs(c) {
			if strings.HasPrefix(id, "dax:ac-1:10") {
				n++
			}
		}
		return n == 9
	})
}

// TestDamagedEntryIsNeverPublished flips a byte of an entry's payload in
// the journal: the publisher must leave it out, report the damage, and
// publish the rest.
func TestDamagedEntryIsNeverPublished(t *testing.T) {
	j := openJournal(t)
	ctx := context.Background()
	for c := range uint64(4) {
		if err := j.Cycle(ctx, cycleRecord("ac-1", c+1)); err != nil {
			t.Fatal(err)
		}
	}
	es, _ := j.Entries(ctx, "ac-1", journal.KindCycle)
	// A byte of its payload flips on disk (written behind the journal's
	// back, as the disk would).
	db, err := sql.Open("sqlite", j.Path())
	if err != nil {
		t.Fatal(err)
	}
	damaged := append([]byte(nil), es[1].Payload...)
	damaged[len(damaged)/2] ^= 0x01
	if _, err := db.ExecContext(ctx, `UPDATE entries SET payload = ? WHERE id = ?`, damaged, es[1].ID); err != nil {
		t.Fatal(err)
	}
	db.Close()
	broker := startMochi(t, "127.0.0.1:0")
	c := &collector{}
	if err := broker.Subscribe("sterigate/#", c.add); err != nil {
		t.Fatal(err)
	}
	p, err := New(testOptions(broker.URL()), j)
	if err != nil {
		t.Fatal(err)
	}
	runPublisher(t, p)
	eventually(t, 10*time.Second, "the damage reported", func() bool {
		select {
		case <-j.Damaged():
			return true
		default:
			return false
		}
	})
	eventually(t, 10*time.Second, "the three good records", func() bool { return len(urgentIDs(c)) == 3 })
	if urgentIDs(c)[es[1].RecordID] {
		t.Fatalf("the damaged record %s was published", es[1].RecordID)
	}
	if !strings.Contains(j.DamageReason(), "hashes to") || !slices.Contains(p.Alarms(), journal.AlarmDamaged) {
		t.Fatalf("damage %q, alarms %v", j.DamageReason(), p.Alarms())
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRepublishSendsAgainMarkedAsReplays: a consumer that lost records
// gets them again, byte for byte with the replay marker, from a
// connection of the command's own, and the command says they came back.
func TestRepublishSendsAgainMarkedAsReplays(t *testing.T) {
	j := openJournal(t)
	fill(t, j, []string{"ac-1", "ac-2"}, 1, 2, 1)
	es, err := j.Entries(context.Background(), "ac-1", "")
	if err != nil {
		t.Fatal(err)
	}
	broker := startMochi(t, "127.0.0.1:0")
	c := &collector{}
	if err := broker.Subscribe("sterigate/#", c.add); err != nil {
		t.Fatal(err)
	}
	rep, err := Republish(context.Background(), testOptions(broker.URL()), func(send func(journal.Entry) error) error {
		for _, e := range es {
			if err := send(e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	urgent := len(urgentEntries(t, j)) / 2 // ac-1's half
	if rep.Published != len(es) || rep.Acknowledged != len(es) || rep.Confirmed != urgent || len(rep.Unconfirmed) != 0 {
		t.Fatalf("report %+v, want %d published and acknowledged, %d confirmed", rep, len(es), urgent)
	}
	eventually(t, 5*time.Second, "every entry at the consumer", func() bool { return len(c.all()) >= len(es) })
	journaled := map[string]bool{}
	for _, e := range es {
		journaled[string(e.Payload)] = true
	}
	for _, m := range c.all() {
		p, replay := unwrap(m.payload)
		if !replay || !journaled[string(p)] {
			t.Fatalf("republished %.80s: replay marker %v, the journal's bytes %v", m.payload, replay, journaled[string(p)])
		}
	}
}
