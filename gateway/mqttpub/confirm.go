package mqttpub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sterigate/sterigate/gateway/journal"
	"github.com/sterigate/sterigate/protocol/evidence"
)

// A PUBACK says the broker took the message, not that anyone can receive
// it: a broker whose ACL denies the topic acknowledges and drops it (MQTT
// 3.1.1 has no reason code for that). So the publisher subscribes to its
// own cycle and event topics on every connection, and a cycle record or
// event is confirmed when it comes back byte for byte (replay marker
// aside). One not confirmed within ConfirmTimeout raises the
// mqtt_unconfirmed alarm and is published again, with back-off, until it
// comes back. Telemetry is exempt: it is live data whose samples the cycle
// record carries, a lost batch shows as a seq gap, and echoing every batch
// would double the traffic of the biggest stream.

// AlarmUnconfirmed is the gateway alarm raised while a cycle record or
// event the broker acknowledged has not come back within ConfirmTimeout.
const AlarmUnconfirmed = "mqtt_unconfirmed"

// maxConfirmBackoff caps the wait between two re-publications of an
// unconfirmed entry.
const maxConfirmBackoff = 10 * time.Minute

// echoBook collects the hashes of the messages that came back on the
// gateway's own subscription. paho calls add from its own goroutines; it
// only hashes and stores, so it never holds up the network loop.
type echoBook struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func newEchoBook() *echoBook { return &echoBook{seen: map[string]time.Time{}} }

// add records one message that came back: the hash of its payload with the
// replay marker and signature removed, which is the journal's hash of the
// entry.
func (b *echoBook) add(payload []byte) {
	u, err := evidence.Unwrap(payload)
	if err != nil {
		return // not one of the gateway's messages as it published them
	}
	sum := sha256.Sum256(u.Payload)
	h := hex.EncodeToString(sum[:])
	b.mu.Lock()
	b.seen[h] = time.Now()
	b.mu.Unlock()
}

// take reports whether a message with hash came back, and forgets it.
func (b *echoBook) take(hash string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.seen[hash]
	delete(b.seen, hash)
	return ok
}

// forgetBefore drops echoes nothing claimed (another gateway's messages
// on the same site, duplicates) once they are old.
func (b *echoBook) forgetBefore(t time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for h, at := range b.seen {
		if at.Before(t) {
			delete(b.seen, h)
		}
	}
}

// confirmState is one connection's confirmation bookkeeping.
type confirmState struct {
	echo *echoBook
	// awaiting are the acknowledged entries waiting to come back, by hash.
	awaiting map[string]int64
	// retries holds the back-off of entries published again.
	retries map[int64]retry
	cursor  int64 // UnconfirmedBefore walks from here, then wraps
	// refused is set when the broker refused the subscription.
	refused chan string
}

type retry struct {
	attempts int
	next     time.Time
}

func newConfirmState() confirmState {
	return confirmState{echo: newEchoBook(), awaiting: map[string]int64{}, retries: map[int64]retry{}, refused: make(chan string, 1)}
}

// subscribeOwnTopics subscribes to the gateway's cycle and event topics.
// It does not wait for the SUBACK: the broker handles the SUBSCRIBE before
// the PUBLISHes that follow on the same connection. A refused
// subscription (SUBACK 0x80) is reported on s.confirm.refused.
func (s *sessionState) subscribeOwnTopics(wg *sync.WaitGroup, ctx context.Context) {
	p := s.p
	filters := map[string]byte{p.topics.Cycle("+"): 1, p.topics.Event("+"): 1}
	receiptTopic := p.topics.GatewayReceipt(p.opts.Gateway)
	if p.receiptsOn() {
		filters[receiptTopic] = 1
	}
	book := s.confirm.echo
	tok := s.client.SubscribeMultiple(filters, func(_ paho.Client, m paho.Message) {
		if m.Topic() == receiptTopic {
			if err := p.receipts.add(m.Payload()); err != nil {
				p.log.Warn("mqtt: a message on the receipt topic is not a receipt", "topic", receiptTopic, "err", err)
			}
			return
		}
		book.add(m.Payload())
	})
	refused := s.confirm.refused
	wg.Go(func() {
		if err := waitToken(ctx, tok, p.opts.AckTimeout); err != nil {
			if ctx.Err() == nil {
				refused <- fmt.Sprintf("no SUBACK for the gateway's own topics: %v", err)
			}
			return
		}
		st, ok := tok.(*paho.SubscribeToken)
		if !ok {
			return
		}
		for topic, qos := range st.Result() {
			if qos == 0x80 {
				refused <- fmt.Sprintf("the broker refused the subscription to %s", topic)
				return
			}
		}
	})
}

// awaitEcho notes an acknowledged cycle record or event.
func (s *sessionState) awaitEcho(e *journal.Entry) {
	if e.Kind == journal.KindTelemetry {
		return
	}
	s.confirm.awaiting[e.Hash] = e.ID
}

// confirmEchoes marks confirmed what came back.
func (s *sessionState) confirmEchoes(ctx context.Context) error {
	var ids []int64
	for h, id := range s.confirm.awaiting {
		if s.confirm.echo.take(h) {
			ids = append(ids, id)
			delete(s.confirm.awaiting, h)
			delete(s.confirm.retries, id)
		}
	}
	s.confirm.echo.forgetBefore(time.Now().Add(-2 * s.p.opts.ConfirmTimeout))
	if len(ids) == 0 {
		return nil
	}
	if err := s.p.j.MarkConfirmed(ctx, ids...); err != nil {
		return fmt.Errorf("mark %d entries confirmed: %w", len(ids), err)
	}
	s.p.confirmedTotal.Add(int64(len(ids)))
	return nil
}

// retryUnconfirmed publishes again the acknowledged entries that have not
// come back within ConfirmTimeout, each with its own back-off, and updates
// the mqtt_unconfirmed alarm.
func (s *sessionState) retryUnconfirmed(ctx context.Context) error {
	p := s.p
	now := time.Now()
	before := now.Add(-p.opts.ConfirmTimeout)
	n, err := p.j.CountUnconfirmed(ctx, before)
	if err != nil {
		return err
	}
	if p.setUnconfirmed(n) && n > 0 {
		p.log.Error("cycle records or events were acknowledged by the broker but never came back on the gateway's own subscription: publishing them again",
			"entries", n, "within", p.opts.ConfirmTimeout, "likely_cause", "the broker's ACL denies the gateway's topics, or the broker lost them")
	}
	if n == 0 {
		s.confirm.cursor = 0
		return nil
	}
	es, err := p.j.UnconfirmedAfter(ctx, s.confirm.cursor, before, 64)
	if err != nil {
		return err
	}
	if len(es) == 0 {
		s.confirm.cursor = 0 // wrap round
		return nil
	}
	s.republishDue(es, &s.confirm.cursor, s.confirm.retries, p.opts.ConfirmTimeout, now)
	return nil
}

// republishDue publishes es again (with the replay marker), each entry on
// its own back-off — base doubled per attempt, at most maxConfirmBackoff
// — while the window has room, and moves *cursor past each entry it
// looked at.
func (s *sessionState) republishDue(es []journal.Entry, cursor *int64, retries map[int64]retry, base time.Duration, now time.Time) {
	for i := range es {
		e := &es[i]
		*cursor = e.ID
		r := retries[e.ID]
		if now.Before(r.next) || s.count >= s.p.opts.Window {
			continue
		}
		r.attempts++
		r.next = now.Add(min(base<<min(r.attempts, 20), maxConfirmBackoff))
		retries[e.ID] = r
		s.publish(s.topicOf(e), evidence.Published(e.Payload, e.Signature, true), false, e)
	}
}

// setUnconfirmed records how many entries are past their confirmation
// time; it reports whether the alarm changed.
func (p *Publisher) setUnconfirmed(n int64) bool {
	was := p.unconfirmed.Swap(n)
	return (was > 0) != (n > 0)
}

// Unconfirmed returns how many cycle records and events are past their
// confirmation time without having come back.
func (p *Publisher) Unconfirmed() int64 { return p.unconfirmed.Load() }

// Confirmed returns how many entries came back and were confirmed since
// the publisher started.
func (p *Publisher) Confirmed() int64 { return p.confirmedTotal.Load() }

// Alarms returns the gateway's active alarms: the journal's and the
// publisher's own.
func (p *Publisher) Alarms() []string {
	alarms := p.j.Alarms()
	if p.unconfirmed.Load() > 0 {
		alarms = append(alarms, AlarmUnconfirmed)
	}
	if p.receiptsAlarm.Load() {
		alarms = append(alarms, AlarmReceiptsMissing)
	}
	return alarms
}

// verified returns es without the entries that fail their check before
// publishing (journal.Verify), and reports the damage: such an entry must
// not reach a consumer, and the gateway replaces the journal.
func (s *sessionState) verified(ctx context.Context, es []journal.Entry) ([]journal.Entry, error) {
	bad, err := s.p.j.Verify(ctx, es)
	if err != nil || len(bad) == 0 {
		return es, err
	}
	skip := map[int64]bool{}
	for _, b := range bad {
		skip[b.Entry.ID] = true
		s.p.log.Error("journal entry damaged: not published", "device", b.Entry.Device, "seq", b.Entry.Seq, "id", b.Entry.RecordID, "why", b.Why)
	}
	s.p.j.ReportDamage(bad[0].Why)
	out := es[:0]
	for _, e := range es {
		if !skip[e.ID] {
			out = append(out, e)
		}
	}
	return out, nil
}
