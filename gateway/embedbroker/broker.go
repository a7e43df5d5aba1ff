// Package embedbroker runs an in-process MQTT broker (mochi-mqtt) on the
// loopback interface, so `sterigate demo` and tests need nothing installed.
// It allows every client and topic and keeps nothing on disk: it is for
// the demo and tests only, never for a hospital network.
package embedbroker

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Broker is a running in-process broker.
type Broker struct {
	server    *mqtt.Server
	tcp       *listeners.TCP
	addr      string
	closeOnce sync.Once
	closeErr  error
	subIDs    atomic.Int32
}

// allowAll lets every client connect and use every topic. hooks/auth would
// do the same but pulls in a YAML module we do not use.
type allowAll struct {
	mqtt.HookBase
}

func (h *allowAll) ID() string { return "sterigate-allow-all" }

func (h *allowAll) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck}, []byte{b})
}

func (h *allowAll) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool { return true }

func (h *allowAll) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool { return true }

// Start listens on addr ("127.0.0.1:0" picks a free port) and serves until
// Close. addr must be a loopback address: this broker lets anyone in.
func Start(addr string, logger *slog.Logger) (*Broker, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("embedded broker: address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("embedded broker: address %q is not a loopback address: this broker accepts every client", addr)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	server := mqtt.New(&mqtt.Options{InlineClient: true, Logger: logger.With("component", "embedbroker")})
	if err := server.AddHook(new(allowAll), nil); err != nil {
		return nil, fmt.Errorf("embedded broker: add allow-all hook: %w", err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})
	if err := server.AddListener(tcp); err != nil {
		return nil, fmt.Errorf("embedded broker: listen on %s: %w", addr, err)
	}
	if err := server.Serve(); err != nil {
		server.Close()
		return nil, fmt.Errorf("embedded broker: serve: %w", err)
	}
	return &Broker{server: server, tcp: tcp, addr: tcp.Address()}, nil
}

// Addr is the bound host:port.
func (b *Broker) Addr() string { return b.addr }

// URL is the address as a paho broker URL (tcp://host:port).
func (b *Broker) URL() string { return "tcp://" + b.addr }

// Close stops the broker; connected clients see their connection end. It
// is safe to call more than once (mochi panics on a second Close).
//
// mochi's own Close can deadlock: it lists the listener's clients under a
// read lock that it takes twice, and a client connecting at that moment
// queues a write lock in between (seen in CI, a test hung for 10 min). So
// the listener is closed first without mochi closing its clients, the
// clients are disconnected from one snapshot of the list, and mochi's Close
// then finds the listener already closed.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.tcp.Close(func(string) {})
		for _, cl := range b.server.Clients.GetAll() {
			if cl.Net.Listener == b.tcp.ID() && !cl.Closed() {
				_ = b.server.DisconnectClient(cl, packets.ErrServerShuttingDown)
			}
		}
		b.closeErr = b.server.Close()
	})
	return b.closeErr
}

// Subscribe calls fn for every message published on a topic matching
// filter, including retained messages already held. fn runs on the
// broker's goroutines: it must not block for long.
func (b *Broker) Subscribe(filter string, fn func(topic string, payload []byte, retained bool)) error {
	id := int(b.subIDs.Add(1))
	err := b.server.Subscribe(filter, id, func(cl *mqtt.Client, sub packets.Subscription, pk packets.Packet) {
		fn(pk.TopicName, append([]byte(nil), pk.Payload...), pk.FixedHeader.Retain)
	})
	if err != nil {
		return fmt.Errorf("embedded broker: subscribe %q: %w", filter, err)
	}
	return nil
}

// Publish publishes from the broker itself (tests).
func (b *Broker) Publish(topic string, payload []byte, retained bool) error {
	if err := b.server.Publish(topic, payload, retained, 1); err != nil {
		return fmt.Errorf("embedded broker: publish %q: %w", topic, err)
	}
	return nil
}
