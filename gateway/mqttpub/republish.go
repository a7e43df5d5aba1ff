package mqttpub

import (
	"context"
	"fmt"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sterigate/sterigate/gateway/journal"
	"github.com/sterigate/sterigate/protocol/evidence"
)

// RepublishReport says what Republish sent.
type RepublishReport struct {
	Broker string
	// Published counts the entries published; Acknowledged those the
	// broker acknowledged (PUBACK).
	Published, Acknowledged int
	// Confirmed counts the cycle records and events that came back on the
	// command's own subscription; Unconfirmed lists the ids of those that
	// did not within ConfirmTimeout.
	Confirmed   int
	Unconfirmed []string
}

// Republish sends entries again, marked as replays, for a consumer that
// lost them (a broker without persistence that restarted, a consumer's
// database restored from a backup). It uses a connection of its own —
// client id "<ClientID>-republish", no Last Will — so it may run while the
// gateway runs and changes nothing in the journal. entries is called with
// a function to call for each entry to send.
func Republish(ctx context.Context, opts Options, entries func(send func(journal.Entry) error) error) (RepublishReport, error) {
	var rep RepublishReport
	p, err := prepare(opts)
	if err != nil {
		return rep, err
	}
	var client paho.Client
	for _, broker := range p.opts.Brokers {
		// No Last Will: this connection is not the gateway.
		o := p.clientOptions(broker, p.opts.ClientID+"-republish")
		c := paho.NewClient(o)
		if err = waitToken(ctx, c.Connect(), p.opts.ConnectTimeout+time.Second); err == nil {
			client, rep.Broker = c, broker
			break
		}
		c.Disconnect(0)
		p.log.Warn("republish: broker not reachable", "broker", broker, "err", err)
	}
	if client == nil {
		return rep, fmt.Errorf("no broker reachable: %w", err)
	}
	defer client.Disconnect(250)

	book := newEchoBook()
	sub := client.SubscribeMultiple(map[string]byte{p.topics.Cycle("+"): 1, p.topics.Event("+"): 1},
		func(_ paho.Client, m paho.Message) { book.add(m.Payload()) })
	if err := waitToken(ctx, sub, p.opts.AckTimeout); err != nil {
		p.log.Warn("republish: no subscription to the gateway's own topics: nothing can be confirmed", "err", err)
	}
	awaiting := map[string]string{} // hash → id
	var mu sync.Mutex
	window := make(chan struct{}, p.opts.Window)
	var wg sync.WaitGroup
	var firstErr error
	send := func(e journal.Entry) error {
		select {
		case window <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		mu.Lock()
		failed := firstErr
		mu.Unlock()
		if failed != nil {
			return failed
		}
		topic := p.topics.Event(e.Device)
		switch e.Kind {
		case journal.KindCycle:
			topic = p.topics.Cycle(e.Device)
		case journal.KindTelemetry:
			topic = p.topics.Telemetry(e.Device)
		}
		tok := client.Publish(topic, 1, false, evidence.Published(e.Payload, e.Signature, true))
		rep.Published++
		if e.Kind != journal.KindTelemetry {
			awaiting[e.Hash] = e.RecordID
		}
		wg.Go(func() {
			defer func() { <-window }()
			err := waitToken(ctx, tok, p.opts.AckTimeout)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("publish %s: %w", e.RecordID, err)
			}
			if err == nil {
				rep.Acknowledged++
			}
		})
		return nil
	}
	err = entries(send)
	wg.Wait()
	if err == nil {
		err = firstErr
	}
	// What came back, within the confirmation time.
	deadline := time.Now().Add(p.opts.ConfirmTimeout)
	for len(awaiting) > 0 {
		for h := range awaiting {
			if book.take(h) {
				rep.Confirmed++
				delete(awaiting, h)
			}
		}
		if len(awaiting) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		select {
		case <-time.After(50 * time.Millisecond): // polling interval
		case <-ctx.Done():
		}
	}
	for _, id := range awaiting {
		rep.Unconfirmed = append(rep.Unconfirmed, id)
	}
	return rep, err
}
