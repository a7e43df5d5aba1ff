package archive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sterigate/sterigate/gateway/mqttpub"
	"github.com/sterigate/sterigate/protocol"
)

// Options configure an Archive.
type Options struct {
	// ID names the instance; ClientID is its MQTT client id, fixed, with
	// a persistent session (clean session false).
	ID, ClientID string
	// Group is the shared-subscription group.
	Group     string
	TopicRoot string
	// Connector gives the brokers and how to connect to them.
	Connector *mqttpub.Connector
	// BatchSize is the most messages stored in one transaction (default
	// 500); Linger how long a batch waits to fill (default 20 ms).
	BatchSize int
	Linger    time.Duration
	// GapAlarmAfter is how long a hole may stay open before it is a gap
	// (default 2 min); the sweep looks every quarter of it.
	GapAlarmAfter time.Duration
	// AckTimeout bounds the wait for a PUBACK or SUBACK (default 10 s).
	AckTimeout time.Duration
	Logger     *slog.Logger
	// OnCommit is called after each committed batch, OnSubscribed after
	// each SUBACK (tests, benchmarks).
	OnCommit     func(BatchResult)
	OnSubscribed func()
}

// Archive subscribes to every site's entries and stores them.
type Archive struct {
	opts  Options
	store *Store
	log   *slog.Logger
}

// New prepares an archive on store; Run connects.
func New(opts Options, store *Store) (*Archive, error) {
	if opts.Connector == nil || len(opts.Connector.Brokers()) == 0 {
		return nil, errors.New("archive: no broker")
	}
	if opts.ID == "" || opts.ClientID == "" || opts.Group == "" || opts.TopicRoot == "" {
		return nil, errors.New("archive: id, client id, group and topic root are required")
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	if opts.Linger <= 0 {
		opts.Linger = 20 * time.Millisecond
	}
	if opts.GapAlarmAfter <= 0 {
		opts.GapAlarmAfter = 2 * time.Minute
	}
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Archive{opts: opts, store: store, log: opts.Logger.With("component", "archive")}, nil
}

// Filters are the subscriptions of an instance: the entry topics shared
// by the group, the retained key topics by every instance.
func (a *Archive) Filters() map[string]byte {
	r, g := a.opts.TopicRoot, a.opts.Group
	return map[string]byte{
		"$share/" + g + "/" + r + "/+/+/cycle":     1,
		"$share/" + g + "/" + r + "/+/+/event":     1,
		"$share/" + g + "/" + r + "/+/+/telemetry": 1,
		r + "/+/gateway/+/key":                     1,
	}
}

// Run connects, stores and reconnects until ctx ends.
func (a *Archive) Run(ctx context.Context) error {
	if err := a.store.LoadKeys(ctx); err != nil && ctx.Err() == nil {
		a.log.Warn("could not load the gateways' keys; they come again on the key topics", "err", err)
	}
	brokers := a.opts.Connector.Brokers()
	failures := 0
	for i := 0; ; i = (i + 1) % len(brokers) {
		connected, err := a.session(ctx, brokers[i])
		if ctx.Err() != nil {
			return nil
		}
		if connected {
			failures = 0
		}
		delay := a.opts.Connector.Backoff(failures)
		failures++
		a.log.Warn("archive: mqtt connection ended; reconnecting", "broker", brokers[i], "err", err, "retry_in", delay.Round(time.Millisecond))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// session is one connection. Messages are acknowledged only after the
// transaction that stores them commits: a crash before that leaves them
// with the broker, which sends them again to this client id (its session
// persists) on the next connection.
func (a *Archive) session(ctx context.Context, broker string) (bool, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs := make(chan paho.Message, 2*a.opts.BatchSize)
	lost := make(chan error, 1)
	deliver := func(_ paho.Client, m paho.Message) {
		select {
		case msgs <- m:
		case <-sctx.Done():
			// Not acknowledged: the broker sends it again.
		}
	}
	o := a.opts.Connector.ClientOptions(broker, a.opts.ClientID).
		SetCleanSession(false).
		SetAutoAckDisabled(true).
		// A persistent session's queued messages arrive right after the
		// CONNACK, before any Subscribe call could name a handler.
		SetDefaultPublishHandler(deliver).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			select {
			case lost <- err:
			default:
			}
		})
	client := paho.NewClient(o)
	if err := mqttpub.Wait(ctx, client.Connect(), a.opts.AckTimeout); err != nil {
		client.Disconnect(0)
		return false, fmt.Errorf("connect to %s: %w", broker, err)
	}
	defer client.Disconnect(250)
	a.log.Info("archive connected", "broker", broker, "client_id", a.opts.ClientID, "group", a.opts.Group)
	tok := client.SubscribeMultiple(a.Filters(), deliver)
	if err := mqttpub.Wait(ctx, tok, a.opts.AckTimeout); err != nil {
		return true, fmt.Errorf("subscribe: %w", err)
	}
	if st, ok := tok.(*paho.SubscribeToken); ok {
		for topic, qos := range st.Result() {
			if qos == 0x80 {
				return true, fmt.Errorf("the broker refused the subscription to %s (its ACL must let the archive's user read %s/#)", topic, a.opts.TopicRoot)
			}
		}
	}
	if a.opts.OnSubscribed != nil {
		a.opts.OnSubscribed()
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { a.sweep(sctx, client) })
	err := a.loop(sctx, client, msgs, lost)
	return true, err
}

// loop gathers messages into batches and stores them.
func (a *Archive) loop(ctx context.Context, client paho.Client, msgs <-chan paho.Message, lost <-chan error) error {
	keyTopic := func(t string) bool { return strings.HasSuffix(t, "/key") && strings.Count(t, "/") == 4 }
	var batch []paho.Message
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := a.storeBatch(ctx, client, batch)
		batch = batch[:0]
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-lost:
			return fmt.Errorf("connection lost: %w", err)
		case m := <-msgs:
			if keyTopic(m.Topic()) {
				if err := flush(); err != nil {
					return err
				}
				if err := a.storeKey(ctx, client, m); err != nil {
					return err
				}
				continue
			}
			if len(batch) == 0 {
				timer.Reset(a.opts.Linger)
			}
			batch = append(batch, m)
			if len(batch) >= a.opts.BatchSize {
				timer.Stop()
				if err := flush(); err != nil {
					return err
				}
			}
		case <-timer.C:
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

// retry runs f until it succeeds or ctx ends: a database that restarts
// must not lose the batch (it is not acknowledged until f succeeds).
func (a *Archive) retry(ctx context.Context, what string, f func() error) error {
	for attempt := 0; ; attempt++ {
		err := f()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		delay := min(100*time.Millisecond<<min(attempt, 6), 5*time.Second)
		a.log.Warn("archive: "+what+" failed; trying again", "err", err, "retry_in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (a *Archive) storeBatch(ctx context.Context, client paho.Client, batch []paho.Message) error {
	in := make([]Message, len(batch))
	for i, m := range batch {
		in[i] = Message{Topic: m.Topic(), Payload: m.Payload()}
	}
	var res BatchResult
	if err := a.retry(ctx, "storing a batch", func() error {
		var err error
		res, err = a.store.StoreBatch(ctx, a.opts.TopicRoot, a.opts.ID, in)
		return err
	}); err != nil {
		return err
	}
	for _, m := range batch {
		m.Ack()
	}
	a.publishAlarms(client, res.Alarms)
	if err := a.publishReceipts(ctx, client, res.Gateways); err != nil {
		return err
	}
	if a.opts.OnCommit != nil {
		a.opts.OnCommit(res)
	}
	return nil
}

func (a *Archive) storeKey(ctx context.Context, client paho.Client, m paho.Message) error {
	var alarms []Alarm
	if err := a.retry(ctx, "storing a key", func() error {
		var err error
		alarms, err = a.store.StoreKey(ctx, a.opts.TopicRoot, a.opts.ID, Message{Topic: m.Topic(), Payload: m.Payload()})
		return err
	}); err != nil {
		return err
	}
	m.Ack()
	a.publishAlarms(client, alarms)
	return nil
}

// publishReceipts tells each gateway how far its devices are stored. It
// does not wait for the PUBACKs: with a persistent session paho never
// completes a token whose connection was lost (the loop learns of the loss
// from the connection-lost handler instead), and a receipt lost on the way
// is made good by the next, since each carries the whole mark.
func (a *Archive) publishReceipts(ctx context.Context, client paho.Client, gateways []GatewayRef) error {
	for _, g := range gateways {
		var r protocol.Receipt
		if err := a.retry(ctx, "reading a receipt", func() error {
			var err error
			r, err = a.store.Receipt(ctx, g, a.opts.ID)
			return err
		}); err != nil {
			return err
		}
		b, _ := json.Marshal(r)
		client.Publish(protocol.Topics{Root: a.opts.TopicRoot, Site: g.Site}.GatewayReceipt(g.Gateway), 1, false, b)
	}
	return nil
}

// publishAlarms logs the alarms and publishes them, without waiting for
// the PUBACKs (see publishReceipts): they are also in chain_problems and
// conflicts.
func (a *Archive) publishAlarms(client paho.Client, alarms []Alarm) {
	for _, al := range alarms {
		a.log.Error("archive alarm", "code", al.Code, "site", al.Site, "gateway", al.Gateway, "device", al.Device,
			"from_seq", al.FromSeq, "to_seq", al.ToSeq, "id", al.ID, "text", al.Text)
		if al.Site == "" {
			continue
		}
		b, _ := json.Marshal(al)
		client.Publish(protocol.Topics{Root: a.opts.TopicRoot, Site: al.Site}.ArchiveAlarm(a.opts.ID), 1, false, b)
	}
}

// sweep records as gaps, and alarms, the holes that stayed open past
// GapAlarmAfter.
func (a *Archive) sweep(ctx context.Context, client paho.Client) {
	every := max(a.opts.GapAlarmAfter/4, 200*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		alarms, err := a.store.SweepGaps(ctx, a.opts.ID, a.opts.GapAlarmAfter)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			a.log.Warn("archive: gap sweep failed; trying at the next tick", "err", err)
			continue
		}
		a.publishAlarms(client, alarms)
	}
}
