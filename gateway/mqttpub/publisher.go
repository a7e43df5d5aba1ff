// Package mqttpub publishes the journal's outbox to MQTT brokers.
//
// It uses paho.mqtt.golang with AutoReconnect, ConnectRetry and persistent
// sessions off and a new client per connection attempt, because with those
// settings a QoS 1 token that completes with a nil error means the broker
// sent its PUBACK on that connection (with paho's own auto-reconnect, a
// publish made before a reconnect is reported successful without any
// PUBACK). Only then is an entry marked delivered. Any failure drops the connection
// and the next one restarts from the oldest undelivered entry, so delivery
// is at least once; consumers de-duplicate by the payload's id.
//
// Cycle records and events go before telemetry. Telemetry journaled before
// the current connection came up (the backlog) is paced and goes out
// interleaved with live entries, marked by a leading "replay":true member
// that is not part of the hashed payload (see docs/mqtt.md). A signed
// entry's signature travels the same way, as a leading "sig" member
// (protocol/evidence, docs/evidence.md).
package mqttpub

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sterigate/sterigate/gateway/journal"
	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/protocol/evidence"
)

// ReplayMarker is what the publisher inserts right after the opening brace
// of a replayed payload. Removing these bytes gives back the journaled
// payload, whose SHA-256 the device's next entry carries as prev_hash.
const ReplayMarker = evidence.ReplayMarker

// Publisher drains a journal to MQTT.
type Publisher struct {
	opts      Options
	j         *journal.Journal
	topics    protocol.Topics
	tls       *tls.Config
	password  string
	log       *slog.Logger
	connected atomic.Bool
	running   atomic.Bool
	// downSince is when the broker became unreachable (Unix ns; 0 while
	// connected): from Run's start until the first connection, and from
	// the end of each connection until the next.
	downSince atomic.Int64
	// unconfirmed counts the entries past their confirmation time;
	// confirmedTotal those confirmed since the start.
	unconfirmed, confirmedTotal atomic.Int64
	// receipts gathers the archives' receipts; oldestUnarchived (Unix ms,
	// 0: none) and receiptsAlarm follow them (receipts.go).
	receipts         *receiptBook
	oldestUnarchived atomic.Int64
	receiptsAlarm    atomic.Bool
}

// New checks opts and prepares a publisher; it does not connect.
func New(opts Options, j *journal.Journal) (*Publisher, error) {
	if j == nil {
		return nil, errors.New("mqtt: journal is nil")
	}
	p, err := prepare(opts)
	if err != nil {
		return nil, err
	}
	p.j = j
	return p, nil
}

// prepare checks opts and resolves the password and TLS settings.
func prepare(opts Options) (*Publisher, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	pw, err := o.password()
	if err != nil {
		return nil, err
	}
	p := &Publisher{
		opts:     o,
		topics:   protocol.Topics{Root: o.TopicRoot, Site: o.Site},
		password: pw,
		log:      o.Logger.With("component", "mqtt"),
		receipts: newReceiptBook(),
	}
	needTLS := false
	for _, b := range o.Brokers {
		if u, _ := urlScheme(b); isTLSScheme(u) {
			needTLS = true
		}
	}
	if needTLS {
		if p.tls, err = o.tlsConfig(); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Connected reports whether a broker connection is up (for metrics).
func (p *Publisher) Connected() bool { return p.connected.Load() }

// UnreachableSince returns when the broker became unreachable, or the
// zero time while a connection is up or before Run started.
func (p *Publisher) UnreachableSince() time.Time {
	if ns := p.downSince.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// Run connects, publishes and reconnects until ctx ends; then it publishes
// the retained "offline" gateway status, disconnects and returns nil.
func (p *Publisher) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("mqtt: Run called twice on one publisher")
	}
	defer p.running.Store(false)
	p.downSince.Store(time.Now().UnixNano())
	defer p.downSince.Store(0)
	failures := 0
	for i := 0; ; i = (i + 1) % len(p.opts.Brokers) {
		broker := p.opts.Brokers[i]
		connectedOK, err := p.session(ctx, broker)
		if ctx.Err() != nil {
			return nil
		}
		if connectedOK {
			failures = 0
		}
		delay := p.backoff(failures)
		failures++
		what := "mqtt connection ended; reconnecting"
		if len(p.opts.Brokers) > 1 {
			what = "mqtt connection ended; trying the next broker"
		}
		p.log.Warn(what, "broker", broker, "err", err, "retry_in", delay.Round(time.Millisecond))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// backoff is MinBackoff doubled per consecutive failure, capped at
// MaxBackoff, with ±25% jitter so many gateways do not reconnect in step.
func (p *Publisher) backoff(failures int) time.Duration {
	d := p.opts.MinBackoff
	for range min(failures, 30) {
		d *= 2
		if d >= p.opts.MaxBackoff {
			d = p.opts.MaxBackoff
			break
		}
	}
	jitter := 0.75 + rand.Float64()*0.5
	return time.Duration(float64(d) * jitter)
}

func (p *Publisher) gatewayStatus(state string) []byte {
	st := protocol.GatewayStatus{Gateway: p.opts.Gateway, Site: p.opts.Site, State: state, Version: p.opts.Version}
	if state == protocol.GatewayOnline {
		st.At = time.Now().UTC()
		st.Alarms = p.Alarms()
	}
	b, _ := json.Marshal(st)
	return b
}

func (p *Publisher) newClient(broker string, lost chan<- error) paho.Client {
	o := p.clientOptions(broker, p.opts.ClientID).
		SetBinaryWill(p.topics.GatewayStatus(p.opts.Gateway), p.gatewayStatus(protocol.GatewayOffline), 1, true).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			select {
			case lost <- err:
			default:
			}
		})
	return paho.NewClient(o)
}

// clientOptions are the settings of every connection (libraries' traps:
// no auto-reconnect, no connect retry, a clean session; a new client per
// connection), with the credentials and TLS.
func (p *Publisher) clientOptions(broker, clientID string) *paho.ClientOptions {
	o := paho.NewClientOptions().
		AddBroker(broker).
		SetClientID(clientID).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetOrderMatters(false).
		SetKeepAlive(p.opts.KeepAlive).
		SetPingTimeout(min(10*time.Second, p.opts.KeepAlive)).
		SetWriteTimeout(p.opts.WriteTimeout).
		SetConnectTimeout(p.opts.ConnectTimeout)
	if p.opts.Username != "" {
		o.SetUsername(p.opts.Username)
	}
	if p.password != "" {
		o.SetPassword(p.password)
	}
	if p.tls != nil {
		o.SetTLSConfig(p.tls.Clone())
	}
	return o
}

func urlScheme(broker string) (string, error) {
	u, err := url.Parse(broker)
	if err != nil {
		return "", err
	}
	return u.Scheme, nil
}

// waitToken waits for tok until timeout or ctx, whichever is first. paho's
// Wait can hang forever (#613), so every wait has a deadline.
func waitToken(ctx context.Context, tok paho.Token, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-t.C:
		return fmt.Errorf("no acknowledgement within %s", timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// inflight is one publish waiting for its PUBACK. entry is nil for status
// messages.
type inflight struct {
	entry *journal.Entry
	topic string
	size  int
	tok   paho.Token
}

type ackResult struct {
	entry *journal.Entry
	topic string
	size  int
	err   error
}

// maxInflightBytes bounds the payload bytes waiting for their PUBACK, in
// addition to the Window count: a backlog of cycle records of a few
// hundred kilobytes each must not hold tens of megabytes in flight (each
// payload exists up to three times: journal read, replay copy, paho).
const maxInflightBytes = 1 << 20

// session runs one connection from connect to its end. connectedOK tells
// Run whether the broker accepted the connection (resets the back-off).
func (p *Publisher) session(ctx context.Context, broker string) (connectedOK bool, err error) {
	lost := make(chan error, 1)
	client := p.newClient(broker, lost)
	tok := client.Connect()
	if err := waitToken(ctx, tok, p.opts.ConnectTimeout+time.Second); err != nil {
		client.Disconnect(0)
		return false, fmt.Errorf("connect to %s: %w", broker, err)
	}
	p.connected.Store(true)
	p.downSince.Store(0)
	defer func() {
		p.connected.Store(false)
		p.downSince.Store(time.Now().UnixNano())
	}()
	p.log.Info("mqtt connected", "broker", broker, "client_id", p.opts.ClientID)

	s := &sessionState{
		p:      p,
		client: client,
		// Room for every result a session can owe at shutdown (what is
		// waiting plus what is in flight), so a PUBACK that did arrive is
		// never dropped and re-sent.
		results: make(chan ackResult, 2*p.opts.Window+2),
		queue:   make(chan inflight, p.opts.Window),
		pace:    newPacer(p.opts.ReplayRate),
		// Made here, not in loop: the shutdown publishes statuses even
		// when loop ended before it began.
		published: map[string]protocol.DeviceStatus{},
		confirm:   newConfirmState(),
		archive:   archiveState{retries: map[int64]retry{}},
	}
	// The acknowledgement waiter outlives ctx so that, on shutdown, the
	// PUBACKs already on their way still count.
	ackCtx, stopAcks := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { s.awaitAcks(ackCtx) })
	// Subscriptions do not survive a connection (clean session): made
	// again on each one, before anything is published on it.
	s.subscribeOwnTopics(&wg, ackCtx)
	err = s.loop(ctx, lost)
	graceful := ctx.Err() != nil
	if graceful {
		s.drainInFlight(2*time.Second, lost)
		// The device statuses the gateway changed while stopping ("unknown":
		// nobody watches the devices any more) go out before the gateway's
		// own offline, so a consumer never sees a stopped gateway next to
		// a device still "online".
		if s.firstFailure == nil {
			stopCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if perr := s.publishStatuses(stopCtx, false); perr != nil {
				p.log.Warn("mqtt: device statuses not published at shutdown", "err", perr)
			}
			cancel()
			s.drainInFlight(2*time.Second, lost)
		}
		// Say goodbye before closing: the retained offline status, then a
		// clean DISCONNECT (which suppresses the Last Will).
		off := client.Publish(p.topics.GatewayStatus(p.opts.Gateway), 1, true, p.gatewayStatus(protocol.GatewayOffline))
		if werr := waitToken(context.Background(), off, 3*time.Second); werr != nil {
			p.log.Warn("mqtt: offline status not acknowledged; the broker's Last Will covers it", "err", werr)
		}
	}
	// Let the acknowledgement waiter finish what completed, then stop it.
	close(s.queue)
	if !graceful {
		client.Disconnect(0)
	}
	stopAcks()
	wg.Wait()
	for {
		select {
		case r := <-s.results:
			s.takeResult(r)
			continue
		default:
		}
		break
	}
	if ferr := s.flushAcks(context.Background()); ferr != nil && err == nil {
		err = ferr
	}
	if graceful {
		client.Disconnect(250)
		p.log.Info("mqtt disconnected", "broker", broker)
		return true, nil
	}
	return true, err
}

// sessionState is the state of one connection's publish loop.
type sessionState struct {
	p       *Publisher
	client  paho.Client
	queue   chan inflight // to awaitAcks, in publish order
	results chan ackResult
	count   int // publishes waiting for their result
	bytes   int // their payload bytes

	boundary              int64 // entries with ID <= boundary were journaled before this connection
	urgent, live, backlog laneState
	acked                 []journal.Entry
	statusVersion         uint64
	alarms                []string
	published             map[string]protocol.DeviceStatus
	pace                  *pacer
	firstFailure          error
	confirm               confirmState
	archive               archiveState

	// The replay: entries journaled before this connection. replayed were
	// acknowledged, replayOutstanding wait for their PUBACK.
	replayStart                 time.Time
	replayed, replayOutstanding int
	replayLogged                bool
}

type laneState struct {
	lane      journal.Lane
	queue     []journal.Entry
	cursor    int64 // highest ID taken from the journal
	upTo      int64 // 0: unbounded
	exhausted bool
}

// awaitAcks waits for tokens in publish order. PUBACKs arrive in order on
// one connection, so waiting in order costs nothing and keeps results in
// order.
func (s *sessionState) awaitAcks(ctx context.Context) {
	for m := range s.queue {
		err := waitToken(ctx, m.tok, s.p.opts.AckTimeout)
		select {
		case s.results <- ackResult{entry: m.entry, topic: m.topic, size: m.size, err: err}:
		case <-ctx.Done():
			// The session is ending and nobody reads results any more. A
			// token that already completed is still a real PUBACK on this
			// connection; pass on what fits, the rest is re-sent later.
			offer := func(m inflight) {
				if m.entry != nil && isDone(m.tok) && m.tok.Error() == nil {
					select {
					case s.results <- ackResult{entry: m.entry, topic: m.topic, size: m.size}:
					default:
					}
				}
			}
			offer(m)
			for rest := range s.queue {
				offer(rest)
			}
			return
		}
	}
}

func isDone(tok paho.Token) bool {
	select {
	case <-tok.Done():
		return true
	default:
		return false
	}
}

func (s *sessionState) publish(topic string, payload []byte, retained bool, e *journal.Entry) {
	tok := s.client.Publish(topic, 1, retained, payload)
	if e != nil && e.ID <= s.boundary {
		s.replayOutstanding++
	}
	s.count++
	s.bytes += len(payload)
	s.queue <- inflight{entry: e, topic: topic, size: len(payload), tok: tok}
}

// takeResult handles one acknowledgement; it returns the error that ends
// the session, if any.
func (s *sessionState) takeResult(r ackResult) error {
	s.count--
	s.bytes -= r.size
	if r.err != nil {
		if s.firstFailure == nil {
			s.firstFailure = fmt.Errorf("publish to %s: %w", r.topic, r.err)
		}
		return s.firstFailure
	}
	if r.entry != nil {
		// An entry published again to be confirmed was delivered before.
		if r.entry.DeliveredAt.IsZero() {
			s.acked = append(s.acked, *r.entry)
		}
		s.awaitEcho(r.entry)
		if r.entry.ID <= s.boundary {
			s.replayed++
			s.replayOutstanding--
		}
	}
	return nil
}

// noteReplayFinished logs, once per connection, how many entries the
// replay of what was journaled before the connection delivered, when the
// last of them is acknowledged.
func (s *sessionState) noteReplayFinished() {
	if s.replayLogged || s.replayed == 0 || s.replayOutstanding > 0 {
		return
	}
	urgentDone := s.urgent.cursor >= s.boundary || (s.urgent.exhausted && len(s.urgent.queue) == 0)
	backlogDone := s.backlog.exhausted && len(s.backlog.queue) == 0
	if urgentDone && backlogDone {
		s.replayLogged = true
		s.p.log.Info("replay finished", "entries", s.replayed, "took", time.Since(s.replayStart).Round(time.Millisecond))
	}
}

func (s *sessionState) flushAcks(ctx context.Context) error {
	if len(s.acked) == 0 {
		return nil
	}
	ids := make([]int64, len(s.acked))
	for i, e := range s.acked {
		ids[i] = e.ID
	}
	if err := s.p.j.MarkDelivered(ctx, ids...); err != nil {
		return fmt.Errorf("mark %d entries delivered: %w", len(ids), err)
	}
	if fn := s.p.opts.OnDelivered; fn != nil {
		for _, e := range s.acked {
			fn(e)
		}
	}
	s.acked = s.acked[:0]
	return nil
}

func (s *sessionState) topicOf(e *journal.Entry) string {
	switch e.Kind {
	case journal.KindCycle:
		return s.p.topics.Cycle(e.Device)
	case journal.KindTelemetry:
		return s.p.topics.Telemetry(e.Device)
	default:
		return s.p.topics.Event(e.Device)
	}
}

// payloadOf returns what to publish for e: the journaled bytes, with the
// replay marker inserted when e was journaled before this connection or
// salvaged from a damaged journal, and the entry's signature.
func (s *sessionState) payloadOf(e *journal.Entry) []byte {
	return evidence.Published(e.Payload, e.Signature, e.ID <= s.boundary || e.Replay)
}

// publishStatuses publishes the gateway's online status (on connect, or
// when its alarms change) and every device status that differs from what
// this connection last published.
func (s *sessionState) publishStatuses(ctx context.Context, force bool) error {
	p := s.p
	v := p.j.StatusVersion()
	if !force && v == s.statusVersion {
		return nil
	}
	if force && p.opts.KeyMessage != nil {
		// Retained, and again at every connect: a broker restarted without
		// persistence has forgotten it, and receivers need it to check
		// signatures.
		s.waitForSlot(ctx)
		s.publish(p.topics.GatewayKey(p.opts.Gateway), p.opts.KeyMessage, true, nil)
	}
	alarms := p.Alarms()
	if force || !slices.Equal(alarms, s.alarms) {
		s.alarms = alarms
		s.waitForSlot(ctx)
		s.publish(p.topics.GatewayStatus(p.opts.Gateway), p.gatewayStatus(protocol.GatewayOnline), true, nil)
	}
	sts, err := p.j.DeviceStatuses(ctx)
	if err != nil {
		return err
	}
	for _, st := range sts {
		if prev, ok := s.published[st.Device]; ok && sameStatus(prev, st) {
			continue
		}
		b, err := json.Marshal(st)
		if err != nil {
			return fmt.Errorf("marshal status of %q: %w", st.Device, err)
		}
		s.waitForSlot(ctx)
		s.publish(p.topics.DeviceStatus(st.Device), b, true, nil)
		s.published[st.Device] = st
	}
	// Only now: a read cut short (the shutdown cancels ctx while the
	// stopping gateway's "unknown" statuses are being read) is retried by
	// the next call instead of being taken as done.
	s.statusVersion = v
	return nil
}

// sameStatus says whether two device statuses say the same: their last
// cycles compared by content, not by pointer (a status read twice holds
// two copies of the same last cycle, and comparing pointers republished
// every device that had finished a cycle at every change of any device).
func sameStatus(a, b protocol.DeviceStatus) bool {
	la, lb := a.LastCycle, b.LastCycle
	a.LastCycle, b.LastCycle = nil, nil
	return a == b && (la == lb || la != nil && lb != nil && *la == *lb)
}

// drainInFlight waits, at most timeout, for the results of what is in
// flight, so a clean shutdown does not leave acknowledged entries
// unmarked (they would be re-sent as duplicates at the next start).
func (s *sessionState) drainInFlight(timeout time.Duration, lost <-chan error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for s.count > 0 && s.firstFailure == nil {
		select {
		case r := <-s.results:
			s.takeResult(r)
		case <-t.C:
			return
		case <-lost:
			return
		}
	}
}

// waitForSlot blocks (handling results) until the window has room. It is
// only used for status messages; failures surface in the main loop.
func (s *sessionState) waitForSlot(ctx context.Context) {
	for s.count >= s.p.opts.Window {
		select {
		case r := <-s.results:
			s.takeResult(r)
		case <-ctx.Done():
			return
		}
	}
}

// next returns the next entry to publish: urgent first, then live
// telemetry, then backlog telemetry if the pacer allows.
func (s *sessionState) next(ctx context.Context) (*journal.Entry, time.Duration, error) {
	for _, l := range []*laneState{&s.urgent, &s.live} {
		if e, err := s.take(ctx, l); e != nil || err != nil {
			return e, 0, err
		}
	}
	if len(s.backlog.queue) == 0 && s.backlog.exhausted {
		return nil, 0, nil
	}
	if wait := s.pace.wait(time.Now()); wait > 0 {
		return nil, wait, nil
	}
	e, err := s.take(ctx, &s.backlog)
	if e != nil {
		s.pace.spend()
	}
	return e, 0, err
}

func (s *sessionState) take(ctx context.Context, l *laneState) (*journal.Entry, error) {
	if len(l.queue) == 0 {
		if l.exhausted {
			return nil, nil
		}
		es, err := s.p.j.PendingInLane(ctx, l.lane, l.cursor, l.upTo, s.p.opts.ReadBatch)
		if err != nil {
			return nil, err
		}
		if len(es) == 0 {
			l.exhausted = true
			return nil, nil
		}
		l.cursor = es[len(es)-1].ID
		if es, err = s.verified(ctx, es); err != nil {
			return nil, err
		}
		l.queue = es
		if len(es) == 0 {
			return nil, nil
		}
	}
	e := l.queue[0]
	l.queue = l.queue[1:]
	return &e, nil
}

// loop publishes until the connection fails or ctx ends.
func (s *sessionState) loop(ctx context.Context, lost <-chan error) error {
	p := s.p
	boundary, err := p.j.LastID(ctx)
	if err != nil {
		return err
	}
	s.boundary = boundary
	s.replayStart = time.Now()
	s.urgent = laneState{lane: journal.LaneUrgent}
	s.live = laneState{lane: journal.LaneTelemetry, cursor: boundary}
	s.backlog = laneState{lane: journal.LaneTelemetry, upTo: boundary, exhausted: boundary == 0}
	if err := s.publishStatuses(ctx, true); err != nil {
		return err
	}
	flush := time.NewTicker(p.opts.AckFlushInterval)
	defer flush.Stop()
	recheck := time.NewTicker(min(time.Second, p.opts.ConfirmTimeout/4))
	defer recheck.Stop()
	var paceTimer *time.Timer
	defer func() {
		if paceTimer != nil {
			paceTimer.Stop()
		}
	}()
	for {
		if s.firstFailure != nil {
			return s.firstFailure
		}
		var paceC <-chan time.Time
		for s.count < p.opts.Window && (s.count == 0 || s.bytes < maxInflightBytes) {
			e, wait, err := s.next(ctx)
			if err != nil {
				return err
			}
			if e == nil {
				if wait > 0 {
					if paceTimer == nil {
						paceTimer = time.NewTimer(wait)
					} else {
						paceTimer.Reset(wait)
					}
					paceC = paceTimer.C
				}
				break
			}
			s.publish(s.topicOf(e), s.payloadOf(e), false, e)
		}
		s.noteReplayFinished()
		select {
		case r := <-s.results:
			if err := s.takeResult(r); err != nil {
				return err
			}
			if len(s.acked) >= 500 {
				if err := s.flushAcks(ctx); err != nil {
					return err
				}
			}
		case <-p.j.Changed():
			s.urgent.exhausted = false
			s.live.exhausted = false
			if err := s.publishStatuses(ctx, false); err != nil {
				return err
			}
		case <-flush.C:
			if err := s.flushAcks(ctx); err != nil {
				return err
			}
			if err := s.confirmEchoes(ctx); err != nil {
				return err
			}
			if err := s.applyReceipts(ctx); err != nil {
				return err
			}
			// Status changes can arrive without new entries (alarms).
			if err := s.publishStatuses(ctx, false); err != nil {
				return err
			}
		case <-recheck.C:
			if err := s.retryUnconfirmed(ctx); err != nil {
				return err
			}
			if err := s.checkArchived(ctx); err != nil {
				return err
			}
		case why := <-s.confirm.refused:
			p.log.Error("the gateway cannot confirm what it publishes: nothing will come back, and every cycle record and event will be published again",
				"why", why, "fix", "let the gateway's broker user read "+p.topics.Cycle("+")+" and "+p.topics.Event("+"))
		case <-paceC:
		case err := <-lost:
			return fmt.Errorf("connection lost: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// pacer is a token bucket for the telemetry backlog.
type pacer struct {
	rate   float64 // tokens per second; <= 0 unlimited
	burst  float64
	tokens float64
	last   time.Time
}

func newPacer(rate float64) *pacer {
	burst := max(1, rate/20) // 50 ms worth
	return &pacer{rate: rate, burst: burst, tokens: burst, last: time.Now()}
}

// wait returns how long until one token is available (0: now).
func (pc *pacer) wait(now time.Time) time.Duration {
	if pc.rate <= 0 {
		return 0
	}
	pc.tokens = min(pc.burst, pc.tokens+now.Sub(pc.last).Seconds()*pc.rate)
	pc.last = now
	if pc.tokens >= 1 {
		return 0
	}
	return time.Duration((1 - pc.tokens) / pc.rate * float64(time.Second))
}

func (pc *pacer) spend() {
	if pc.rate > 0 {
		pc.tokens--
	}
}
