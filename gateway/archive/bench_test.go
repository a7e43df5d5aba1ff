package archive

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sterigate/sterigate/gateway/mqttpub"
	"github.com/sterigate/sterigate/protocol"
)

// telemetrySamples is one 10 s batch at 1 Hz, as the Modbus driver sends.
func telemetrySamples(n int) []map[string]any {
	s := make([]map[string]any, n)
	at := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	for i := range s {
		s[i] = map[string]any{"t": at.Add(time.Duration(i) * time.Second), "temp_c": 134.2, "pressure_kpa": 304.5, "phase": "sterilizing"}
	}
	return s
}

// benchChains makes n devices of one gateway and stores the gateway's key.
func benchChains(b *testing.B, s *Store, n int) []*deviceChain {
	var chains []*deviceChain
	for d := range n {
		c := newChain(b, "dax", "gw1", fmt.Sprintf("ac%d", d), 1)
		chains = append(chains, c)
		if _, err := s.StoreKey(context.Background(), testRoot, "a1", c.keyMessage()); err != nil {
			b.Fatal(err)
		}
	}
	return chains
}

// BenchmarkStoreBatch stores batches of 500 messages of 20 devices (a
// cycle record or event for every 20 telemetry batches, the mix of a busy
// CSSD) in one transaction each, telemetry kept. Reported: messages/s.
func BenchmarkStoreBatch(b *testing.B) {
	for _, keep := range []bool{true, false} {
		for _, batch := range []int{500, 2000} {
			b.Run(fmt.Sprintf("telemetry=%t/batch=%d", keep, batch), func(b *testing.B) { benchStoreBatch(b, keep, batch) })
		}
	}
}

func benchStoreBatch(b *testing.B, keepTelemetry bool, batch int) {
	s, _ := openStore(b, StoreOptions{Telemetry: keepTelemetry})
	ctx := context.Background()
	chains := benchChains(b, s, 20)
	samples := map[string]any{"samples": telemetrySamples(10)}
	next := func(i int) Message {
		c := chains[i%len(chains)]
		switch {
		case i%21 == 20:
			return c.next("event", nil)
		default:
			return c.next("telemetry", samples)
		}
	}
	b.ResetTimer()
	n := 0
	for range b.N {
		b.StopTimer()
		msgs := make([]Message, batch)
		for i := range msgs {
			msgs[i] = next(n)
			n++
		}
		b.StartTimer()
		res, err := s.StoreBatch(ctx, testRoot, "a1", msgs)
		if err != nil {
			b.Fatal(err)
		}
		if res.Stored != batch || len(res.Alarms) != 0 {
			b.Fatalf("stored %d, alarms %v", res.Stored, res.Alarms)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkBacklog24h20Sterilizers stores what 20 sterilizers send in 24
// hours, as a gateway replays it after an outage: 172,800 telemetry
// batches (10 samples each) and 480 cycle records of 2,400 samples, in
// batches of 500, telemetry kept. Reported: seconds for the whole backlog.
func BenchmarkBacklog24h20Sterilizers(b *testing.B) {
	for range b.N {
		b.StopTimer()
		s, _ := openStore(b, StoreOptions{Telemetry: true})
		ctx := context.Background()
		chains := benchChains(b, s, 20)
		tele := map[string]any{"samples": telemetrySamples(10)}
		cycle := map[string]any{"samples": telemetrySamples(2400)}
		const perDevice = 172800/20 + 480/20 // telemetry + cycle records
		total := 0
		var elapsed time.Duration
		for i := 0; i < perDevice*20; {
			msgs := make([]Message, 0, 500)
			for ; len(msgs) < 500 && i < perDevice*20; i++ {
				c := chains[i%20]
				// A cycle record after every 360 batches (one an hour).
				if (i/20)%361 == 360 {
					msgs = append(msgs, c.next("cycle", cycle))
				} else {
					msgs = append(msgs, c.next("telemetry", tele))
				}
			}
			b.StartTimer()
			t0 := time.Now()
			res, err := s.StoreBatch(ctx, testRoot, "a1", msgs)
			elapsed += time.Since(t0)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			total += res.Stored
		}
		if total != perDevice*20 {
			b.Fatalf("stored %d of %d", total, perDevice*20)
		}
		b.ReportMetric(elapsed.Seconds(), "s/backlog")
		b.ReportMetric(float64(total)/elapsed.Seconds(), "msgs/s")
	}
}

// BenchmarkReceiptLatency measures, through a real Mosquitto, the time
// from the commit of a message's transaction to its receipt at the
// gateway.
func BenchmarkReceiptLatency(b *testing.B) {
	broker := benchBroker(b)
	s, _ := openStore(b, StoreOptions{})
	conn, err := mqttpub.NewConnector(mqttpub.Options{Brokers: []string{broker.URL("tcp")}, Gateway: "a1", Site: "a1", TopicRoot: testRoot})
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	var committed time.Time
	subscribed := make(chan struct{}, 1)
	a, err := New(Options{ID: "a1", ClientID: "bench-a1", Group: "g", TopicRoot: testRoot, Connector: conn, Linger: time.Millisecond,
		OnCommit:     func(BatchResult) { mu.Lock(); committed = time.Now(); mu.Unlock() },
		OnSubscribed: func() { subscribed <- struct{}{} }}, s)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-subscribed

	receipts := make(chan time.Time, 16)
	gw := paho.NewClient(paho.NewClientOptions().AddBroker(broker.URL("tcp")).SetClientID("bench-gw").SetAutoReconnect(false))
	if err := mqttpub.Wait(ctx, gw.Connect(), 5*time.Second); err != nil {
		b.Fatal(err)
	}
	defer gw.Disconnect(0)
	if err := mqttpub.Wait(ctx, gw.Subscribe(protocol.Topics{Root: testRoot, Site: "dax"}.GatewayReceipt("gw1"), 1, func(_ paho.Client, m paho.Message) {
		var r protocol.Receipt
		if json.Unmarshal(m.Payload(), &r) == nil {
			receipts <- time.Now()
		}
	}), 5*time.Second); err != nil {
		b.Fatal(err)
	}
	c := newChain(b, "dax", "gw1", "ac1", 1)
	var total time.Duration
	b.ResetTimer()
	for range b.N {
		m := c.next("event", nil)
		if err := mqttpub.Wait(ctx, gw.Publish(m.Topic, 1, false, m.Payload), 5*time.Second); err != nil {
			b.Fatal(err)
		}
		got := <-receipts
		mu.Lock()
		total += got.Sub(committed)
		mu.Unlock()
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms-commit-to-receipt")
}
