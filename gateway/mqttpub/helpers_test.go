package mqttpub

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sterigate/sterigate/gateway/embedbroker"
	"github.com/sterigate/sterigate/gateway/journal"
	"github.com/sterigate/sterigate/gateway/mqttpub/brokertest"
	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/protocol/evidence"
)

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}

func openJournal(t testing.TB) *journal.Journal {
	t.Helper()
	j, err := journal.Open(filepath.Join(t.TempDir(), "journal.db"), journal.Options{Gateway: "gw-1", Site: "dax"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func cycleRecord(device string, cycle uint64) protocol.CycleRecord {
	start := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC).Add(time.Duration(cycle) * time.Hour)
	return protocol.CycleRecord{
		Device: device, Cycle: cycle, Program: "134C", StartedAt: start, EndedAt: start.Add(40 * time.Minute),
		Result: protocol.ResultPassed, Complete: true, Source: "modbus-tcp",
	}
}

func telemetry(device string, samples int) protocol.Telemetry {
	b := protocol.Telemetry{Device: device}
	at := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	for i := range samples {
		b.Samples = append(b.Samples, protocol.Sample{At: at.Add(time.Duration(i) * time.Second), TempC: 134.1, PressureKPa: 304.2, Phase: protocol.PhaseSterilizing})
	}
	return b
}

// fill appends, for each device, cycles cycle records, and between them
// telemetry batches and an alarm event.
func fill(t testing.TB, j *journal.Journal, devices []string, firstCycle, cycles, teleEach int) {
	t.Helper()
	ctx := context.Background()
	for c := range cycles {
		for _, d := range devices {
			for range teleEach {
				if err := j.Telemetry(ctx, telemetry(d, 5)); err != nil {
					t.Fatal(err)
				}
			}
			if err := j.Event(ctx, protocol.Event{Device: d, Kind: protocol.EventAlarm, Code: 7}); err != nil {
				t.Fatal(err)
			}
			if err := j.Cycle(ctx, cycleRecord(d, uint64(firstCycle+c))); err != nil {
				t.Fatal(err)
			}
		}
	}
}

type message struct {
	topic    string
	payload  []byte
	retained bool
}

// collector records what a subscriber receives.
type collector struct {
	mu   sync.Mutex
	msgs []message
}

func (c *collector) add(topic string, payload []byte, retained bool) {
	c.mu.Lock()
	c.msgs = append(c.msgs, message{topic, append([]byte(nil), payload...), retained})
	c.mu.Unlock()
}

func (c *collector) all() []message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.msgs)
}

// last returns the latest payload received on topic.
func (c *collector) last(topic string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.msgs) - 1; i >= 0; i-- {
		if c.msgs[i].topic == topic {
			return c.msgs[i].payload, true
		}
	}
	return nil, false
}

// ids returns the distinct record ids received on data topics.
func (c *collector) ids() map[string]int {
	out := map[string]int{}
	for _, m := range c.all() {
		var f struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(m.payload, &f) == nil && f.ID != "" {
			out[f.ID]++
		}
	}
	return out
}

// unwrap takes off what the publisher inserted (the replay marker, the
// signature) and says whether the message was a replay.
func unwrap(p []byte) ([]byte, bool) {
	u, err := evidence.Unwrap(p)
	if err != nil {
		return p, false
	}
	return u.Payload, u.Replay
}

// checkDelivery asserts that everything the journal holds arrived, byte
// for byte (replay marker and signature removed), that first arrivals are in seq order
// per device and topic, and that each device's chain verifies. It returns
// the number of duplicate deliveries.
func checkDelivery(t testing.TB, j *journal.Journal, msgs []message) int {
	t.Helper()
	entries, err := j.Entries(context.Background(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	type got struct {
		payload []byte
		n       int
	}
	byID := map[string]*got{}
	lastSeq := map[string]uint64{} // topic -> last first-arrival seq
	dups := 0
	for _, m := range msgs {
		if m.retained {
			continue
		}
		p, replay := unwrap(m.payload)
		// Live and replayed telemetry are separate streams: live data
		// overtakes the paced backlog by design.
		stream := m.topic
		if replay && strings.HasSuffix(m.topic, "/telemetry") {
			stream += " (replay)"
		}
		var f struct {
			ID  string `json:"id"`
			Seq uint64 `json:"seq"`
		}
		if err := json.Unmarshal(p, &f); err != nil || f.ID == "" {
			continue
		}
		if g := byID[f.ID]; g != nil {
			g.n++
			dups++
			if !bytes.Equal(g.payload, p) {
				t.Fatalf("%s re-delivered with different content", f.ID)
			}
			continue
		}
		byID[f.ID] = &got{payload: p, n: 1}
		if f.Seq <= lastSeq[stream] {
			t.Fatalf("on %s seq %d arrived after seq %d", stream, f.Seq, lastSeq[stream])
		}
		lastSeq[stream] = f.Seq
	}
	prevHash := map[string]string{}
	for _, e := range entries {
		g := byID[e.RecordID]
		if g == nil {
			t.Fatalf("%s (%s seq %d) never arrived", e.RecordID, e.Kind, e.Seq)
		}
		if !bytes.Equal(g.payload, e.Payload) {
			t.Fatalf("%s arrived as %s, journal holds %s", e.RecordID, g.payload, e.Payload)
		}
		var f struct {
			PrevHash string `json:"prev_hash"`
		}
		json.Unmarshal(g.payload, &f)
		if f.PrevHash != prevHash[e.Device] {
			t.Fatalf("%s: prev_hash %q, previous entry hashes to %q", e.RecordID, f.PrevHash, prevHash[e.Device])
		}
		sum := sha256.Sum256(g.payload)
		prevHash[e.Device] = hex.EncodeToString(sum[:])
	}
	if len(byID) != len(entries) {
		t.Fatalf("received %d distinct ids, journal holds %d entries", len(byID), len(entries))
	}
	return dups
}

func pendingCount(t testing.TB, j *journal.Journal) int {
	t.Helper()
	st, err := j.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return int(st.PendingUrgent + st.PendingTelemetry)
}

// runPublisher runs p until the test ends and reports Run's error.
func runPublisher(t testing.TB, p *Publisher) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Errorf("Run did not return within 15s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func testOptions(brokers ...string) Options {
	return Options{
		Brokers: brokers, Gateway: "gw-1", Site: "dax", TopicRoot: "sterigate",
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		AckTimeout: 5 * time.Second, ConnectTimeout: 3 * time.Second, KeepAlive: 5 * time.Second,
	}
}

func startMochi(t testing.TB, addr string) *embedbroker.Broker {
	t.Helper()
	b, err := embedbroker.Start(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// fakeBroker accepts MQTT connections, answers CONNECT and PINGREQ, reads
// PUBLISH packets and never acknowledges them; after dropAfter publishes
// of journal entries (status messages do not count) it closes the
// connection.
type fakeBroker struct {
	ln        net.Listener
	dropAfter int
	mu        sync.Mutex
	conns     int
	publishes []string // topics
	wg        sync.WaitGroup
}

func startFakeBroker(t testing.TB, dropAfter int) *fakeBroker {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeBroker{ln: ln, dropAfter: dropAfter}
	f.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns++
			f.mu.Unlock()
			f.wg.Go(func() { f.serve(c) })
		}
	})
	t.Cleanup(func() { ln.Close(); f.wg.Wait() })
	return f
}

func (f *fakeBroker) url() string { return "tcp://" + f.ln.Addr().String() }

func (f *fakeBroker) counts() (conns, publishes int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns, len(f.publishes)
}

func (f *fakeBroker) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	seen := 0
	for {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		h, err := r.ReadByte()
		if err != nil {
			return
		}
		n, mult := 0, 1
		for {
			b, err := r.ReadByte()
			if err != nil {
				return
			}
			n += int(b&0x7f) * mult
			mult *= 128
			if b&0x80 == 0 {
				break
			}
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		switch h >> 4 {
		case 1: // CONNECT
			c.Write([]byte{0x20, 0x02, 0x00, 0x00})
		case 12: // PINGREQ
			c.Write([]byte{0xd0, 0x00})
		case 3: // PUBLISH: never acknowledged
			tl := int(body[0])<<8 | int(body[1])
			f.mu.Lock()
			f.publishes = append(f.publishes, string(body[2:2+tl]))
			f.mu.Unlock()
			if !bytes.HasSuffix(body[2:2+tl], []byte("/status")) {
				seen++
			}
			if seen >= f.dropAfter {
				return
			}
		}
	}
}

// proxy forwards TCP connections to an upstream address; Cut closes every
// open connection without an MQTT DISCONNECT (the link died) and Pause
// refuses new ones until Resume.
type proxy struct {
	ln       net.Listener
	upstream string
	mu       sync.Mutex
	conns    []net.Conn
	paused   bool
	wg       sync.WaitGroup
}

func startProxy(t testing.TB, upstream string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, upstream: upstream}
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			paused := p.paused
			p.mu.Unlock()
			if paused {
				c.Close()
				continue
			}
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			p.wg.Go(func() { io.Copy(u, c); u.Close(); c.Close() })
			p.wg.Go(func() { io.Copy(c, u); u.Close(); c.Close() })
		}
	})
	t.Cleanup(func() { ln.Close(); p.Cut(); p.wg.Wait() })
	return p
}

func (p *proxy) url() string { return "tcp://" + p.ln.Addr().String() }

func (p *proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) Pause(paused bool) {
	p.mu.Lock()
	p.paused = paused
	p.mu.Unlock()
}

// startMosquitto runs a real Mosquitto on a free loopback port with extra
// configuration lines (listener options). Persistence is on so a graceful
// restart keeps sessions.
func startMosquitto(t testing.TB, extra string) *brokertest.Broker {
	t.Helper()
	return brokertest.Start(t, func(port int, dir string) string {
		return fmt.Sprintf("user root\nlistener %d 127.0.0.1\npersistence true\npersistence_location %s/\nmax_queued_messages 0\nmax_inflight_messages 0\nlog_dest stderr\nlog_type error\nlog_type warning\n%s\n", port, dir, extra)
	})
}

// subscriber is a paho client with a persistent session that subscribes
// to filter on every connect and records what arrives.
func subscribe(t testing.TB, broker, filter string, tlsCfg *pahoTLS) (*collector, paho.Client, *subscribed) {
	t.Helper()
	c := &collector{}
	s := &subscribed{}
	o := paho.NewClientOptions().AddBroker(broker).SetClientID(fmt.Sprintf("test-sub-%d", time.Now().UnixNano())).
		SetCleanSession(false).SetAutoReconnect(true).SetMaxReconnectInterval(100 * time.Millisecond).
		SetConnectRetry(true).SetConnectRetryInterval(100 * time.Millisecond).SetOrderMatters(true)
	if tlsCfg != nil {
		o.SetTLSConfig(tlsCfg.cfg)
	}
	o.SetOnConnectHandler(func(cl paho.Client) {
		tok := cl.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) { c.add(m.Topic(), m.Payload(), m.Retained()) })
		go func() {
			if tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
				s.set(true)
			}
		}()
	})
	o.SetConnectionLostHandler(func(paho.Client, error) { s.set(false) })
	cl := paho.NewClient(o)
	cl.Connect()
	t.Cleanup(func() { cl.Disconnect(100) })
	eventually(t, 10*time.Second, "subscriber to subscribe", s.get)
	return c, cl, s
}

type subscribed struct {
	mu sync.Mutex
	ok bool
}

func (s *subscribed) set(v bool) { s.mu.Lock(); s.ok = v; s.mu.Unlock() }
func (s *subscribed) get() bool  { s.mu.Lock(); defer s.mu.Unlock(); return s.ok }

// pahoTLS carries a subscriber's TLS settings.
type pahoTLS struct{ cfg *tls.Config }

func newTextLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
