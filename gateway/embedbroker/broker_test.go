package embedbroker

import (
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

func TestPublishSubscribeRetainAndRestart(t *testing.T) {
	b, err := Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !strings.HasPrefix(b.Addr(), "127.0.0.1:") || strings.HasSuffix(b.Addr(), ":0") {
		t.Fatalf("Addr() = %q, want the bound loopback port", b.Addr())
	}
	var mu sync.Mutex
	got := map[string]bool{} // topic -> retained
	record := func(topic string, payload []byte, retained bool) {
		mu.Lock()
		got[topic+"="+string(payload)] = retained
		mu.Unlock()
	}
	if err := b.Subscribe("site/#", record); err != nil {
		t.Fatal(err)
	}
	cl := paho.NewClient(paho.NewClientOptions().AddBroker(b.URL()).SetClientID("t").SetAutoReconnect(false))
	if tok := cl.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	for _, m := range []struct {
		topic  string
		retain bool
	}{{"site/a", false}, {"site/status", true}} {
		if tok := cl.Publish(m.topic, 1, m.retain, "x"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", m.topic, tok.Error())
		}
	}
	has := func(k string) bool { mu.Lock(); defer mu.Unlock(); _, ok := got[k]; return ok }
	deadline := time.Now().Add(5 * time.Second)
	for !has("site/a=x") || !has("site/status=x") {
		if time.Now().After(deadline) {
			t.Fatalf("inline subscriber got %v", got)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A later subscription receives the retained message, flagged so.
	retained := make(chan bool, 1)
	if err := b.Subscribe("site/status", func(_ string, _ []byte, r bool) { retained <- r }); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-retained:
		if !r {
			t.Fatal("retained message delivered without the retained flag")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("retained message not delivered to a new subscription")
	}
	cl.Disconnect(0)
	addr := b.Addr()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	b2, err := Start(addr, nil)
	if err != nil {
		t.Fatalf("restart on %s: %v", addr, err)
	}
	b2.Close()
}

func TestRefusesNonLoopbackAddress(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:1883", ":1883", "192.0.2.1:1883", "nonsense"} {
		if b, err := Start(addr, nil); err == nil {
			b.Close()
			t.Errorf("Start(%q) succeeded; the allow-all broker must stay on loopback", addr)
		}
	}
}
