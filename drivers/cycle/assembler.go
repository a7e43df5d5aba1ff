// Package cycle assembles what a driver polls from a sterilizer into
// sterigate's outputs: phase, alarm, implausible-value and connection
// events, batches of live telemetry, and one protocol.CycleRecord per
// finished cycle.
//
// A record never says more than the gateway saw: every stretch of a cycle
// without samples longer than the max sample gap is listed as a hole with
// its reason, an end the gateway did not observe is said (end_seen), and a
// value outside its plausible range is refused, not recorded.
//
// The assembler's working state (the half-assembled cycle, the last cycle it
// recorded, records the sink has not accepted yet) is saved through
// protocol.StateStore after every observation, so a gateway killed in the
// middle of a cycle picks the same cycle up after a restart and still
// produces exactly one record for it, with the time it was down as a hole.
package cycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/sterigate/sterigate/drivers/profile"
	"github.com/sterigate/sterigate/protocol"
)

// Defaults for Config.
const (
	DefaultTelemetryInterval   = 5 * time.Second
	DefaultTelemetryMaxSamples = 10
	// MaxSampleGapPolls is how many poll intervals a cycle may go without
	// a sample before the stretch is a hole, unless the profile sets
	// max_sample_gap.
	MaxSampleGapPolls = 3
	// MinDefaultMaxSampleGap bounds that default from below: under a
	// second, the host's scheduling jitter would be taken for holes.
	MinDefaultMaxSampleGap = time.Second
	// maxQueued bounds live telemetry samples and events kept in memory
	// while the sink refuses them; cycle records are never dropped.
	maxQueued = 1000
)

// Config describes one device's assembler.
type Config struct {
	Device  string
	Source  string // CycleRecord.Source: modbus-tcp, modbus-rtu, ...
	Profile *profile.Profile
	// TelemetryInterval and TelemetryMaxSamples bound how long a live
	// sample waits before its batch goes to the sink (defaults 5 s and 10).
	TelemetryInterval   time.Duration
	TelemetryMaxSamples int
	// PollInterval is how often the link owner polls the device (zero:
	// one second). Unless the profile sets max_sample_gap, a stretch of a
	// cycle longer than MaxSampleGapPolls intervals (at least
	// MinDefaultMaxSampleGap) without a sample is a hole in its record.
	PollInterval time.Duration
	// TimeScale is how many device seconds pass per wall-clock second: 1
	// (or 0) for a real device, more for a simulator running fast. Every
	// record carries it so durations can be judged in device time.
	TimeScale float64
	// Now is the clock (nil: time.Now); tests inject a scripted one.
	Now func() time.Time
}

// Assembler turns one device's readings into events, telemetry and cycle
// records. It is not safe for concurrent use: the link owner's goroutine
// calls Observe, PollFailed and Unreachable.
type Assembler struct {
	cfg    Config
	prof   *profile.Profile
	sink   protocol.Sink
	store  protocol.StateStore
	log    *slog.Logger
	maxGap time.Duration

	loaded  bool
	resumed bool // state with an open cycle was loaded: the gateway was down until the first report
	st      state

	link      string // "", protocol.DeviceOnline or protocol.DeviceOffline
	telemetry []protocol.Sample
	events    []protocol.Event
	dropped   int          // telemetry samples dropped because the sink refused them for too long
	encoded   encodedChunk // the open chunk's samples, encoded once each
	// plausibleSeen holds the fields that have read plausibly since the
	// assembler started: an implausible value after plausible ones is a
	// sensor going wrong, not a profile mistake.
	plausibleSeen map[string]bool
}

// New returns an assembler for cfg.Device. Its saved state is loaded on the
// first Observe, PollFailed or Unreachable. log must already name the
// device (the Modbus unit adds device and unit): adding it again here would
// put the key twice in every JSON log line.
func New(cfg Config, sink protocol.Sink, store protocol.StateStore, log *slog.Logger) (*Assembler, error) {
	switch {
	case cfg.Device == "":
		return nil, errors.New("cycle: device id is empty")
	case cfg.Profile == nil:
		return nil, fmt.Errorf("cycle %s: no profile", cfg.Device)
	case sink == nil || store == nil:
		return nil, fmt.Errorf("cycle %s: a sink and a state store are required", cfg.Device)
	case cfg.TimeScale < 0 || math.IsNaN(cfg.TimeScale) || math.IsInf(cfg.TimeScale, 0):
		return nil, fmt.Errorf("cycle %s: time scale %v is not a positive number", cfg.Device, cfg.TimeScale)
	}
	if cfg.TelemetryInterval <= 0 {
		cfg.TelemetryInterval = DefaultTelemetryInterval
	}
	if cfg.TelemetryMaxSamples <= 0 {
		cfg.TelemetryMaxSamples = DefaultTelemetryMaxSamples
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	a := &Assembler{cfg: cfg, prof: cfg.Profile, sink: sink, store: store, log: log, plausibleSeen: map[string]bool{}}
	a.maxGap = cfg.Profile.MaxSampleGap
	if a.maxGap <= 0 {
		a.maxGap = max(MaxSampleGapPolls*cfg.PollInterval, MinDefaultMaxSampleGap)
	}
	return a, nil
}

// MaxSampleGap is the longest stretch of a cycle without a sample that is
// not a hole: the profile's max_sample_gap, or the default from the poll
// interval.
func (a *Assembler) MaxSampleGap() time.Duration { return a.maxGap }

// obs is one successful poll as the cycle-end modes see it.
type obs struct {
	r         profile.Reading
	smp       protocol.Sample // this poll's sample (taken only if hasSample)
	hasSample bool            // the chamber temperature and pressure were plausible
	now       time.Time
	nowMs     int64
	// recent: the previous reading is at most the max sample gap old, so
	// a change between the two was seen as it happened.
	recent    bool
	firstEver bool
	alarms    []protocol.Alarm // alarms that became active at this poll
}

// Observe feeds one successful poll's reading. It returns an error when the
// state could not be loaded or saved, or the sink refused something; what
// was not delivered is kept and retried on the next call.
func (a *Assembler) Observe(ctx context.Context, r profile.Reading) error {
	if err := a.load(ctx); err != nil {
		return err
	}
	now := a.cfg.Now()
	nowMs := now.UnixMilli()
	a.noteResume()
	if a.link != protocol.DeviceOnline {
		a.link = protocol.DeviceOnline
		a.queueEvent(protocol.Event{Kind: protocol.EventOnline, At: now.UTC(), Cycle: r.Counter})
	}
	o := obs{r: r, now: now, nowMs: nowMs, hasSample: !r.NoSample, firstEver: !a.st.Baselined,
		recent: a.st.LastSeen != 0 && time.Duration(nowMs-a.st.LastSeen)*time.Millisecond <= a.maxGap}
	o.smp = protocol.Sample{At: time.UnixMilli(nowMs).UTC(), TempC: r.TempC, PressureKPa: r.PressureKPa, Phase: r.Phase, Ch: r.Channels}
	if !r.HasPhase {
		o.smp.Phase = protocol.PhaseUnknown
	}
	if r.HasPhase && o.smp.Phase != a.st.LastPhase {
		a.queueEvent(protocol.Event{Kind: protocol.EventPhase, At: now.UTC(), Phase: o.smp.Phase, Cycle: r.Counter, Code: r.PhaseCode})
	}
	o.alarms = a.alarmEdges(r, now)
	a.implausibleEdges(r, now)

	switch a.prof.CycleEnd.On {
	case profile.EndOnLastCycleChange:
		a.stepLatched(o)
	case profile.EndOnCounterChange:
		a.stepCounter(o)
	case profile.EndOnPhaseEnters:
		a.stepPhase(o)
	case profile.EndOnNextCycleStarts:
		a.stepNext(o)
	}
	a.st.Baselined = true
	a.st.LastCounter = r.Counter
	a.st.LastPhase = o.smp.Phase
	a.st.LastSeen = nowMs
	a.st.LastActive = nowMs

	if o.hasSample {
		a.telemetry = append(a.telemetry, o.smp)
	}
	if over := len(a.telemetry) - maxQueued; over > 0 {
		a.telemetry = a.telemetry[over:]
		a.dropped += over
	}
	return a.deliver(ctx, now)
}

// PollFailed records a poll that reached the device but gave nothing
// usable: an exception reply, a reply the profile cannot decode. Link
// owners report an unreachable device with Unreachable instead. The stretch
// of a cycle in progress without samples is then a poll_errors hole if it
// grows longer than the max sample gap.
func (a *Assembler) PollFailed(ctx context.Context, cause error) {
	a.noSample(ctx, protocol.HolePollErrors)
}

// Unreachable records that the device could not be reached: one offline
// event per outage. A cycle in progress stays open; the stretch without
// samples is a device_offline hole if it grows longer than the max sample
// gap.
func (a *Assembler) Unreachable(ctx context.Context, cause error) {
	if a.link != protocol.DeviceOffline {
		a.link = protocol.DeviceOffline
		text := "device does not answer"
		if cause != nil {
			text = cause.Error()
		}
		// The saved state may not be loaded yet; the counter is then 0.
		_ = a.load(ctx)
		a.queueEvent(protocol.Event{Kind: protocol.EventOffline, At: a.cfg.Now().UTC(), Text: text, Cycle: a.st.LastCounter})
	}
	a.noSample(ctx, protocol.HoleDeviceOffline)
}

// noSample notes a report without a reading and retries what is pending:
// a sink that came back should not wait for the device.
func (a *Assembler) noSample(ctx context.Context, reason string) {
	if err := a.load(ctx); err != nil {
		a.log.Warn("cycle state", "err", err)
		return
	}
	now := a.cfg.Now()
	a.noteResume()
	a.missing(now.UnixMilli(), reason)
	a.st.LastActive = now.UnixMilli()
	if err := a.deliver(ctx, now); err != nil {
		a.log.Warn("delivery while the device gives no reading", "err", err)
	}
}

// noteResume adds the gateway's own downtime to the open stretch of a
// cycle resumed from saved state.
func (a *Assembler) noteResume() {
	if !a.resumed {
		return
	}
	a.resumed = false
	if c := a.st.Current; c != nil {
		from := max(a.st.LastActive, a.st.LastSeen, c.Covered)
		c.Missing = append(c.Missing, holePart{From: from, Reason: protocol.HoleGatewayDown})
	}
}

// alarmEdges queues an event for each alarm that became active and returns
// them for the cycle record.
func (a *Assembler) alarmEdges(r profile.Reading, now time.Time) []protocol.Alarm {
	var raised []protocol.Alarm
	active := make([]int, 0, len(r.Alarms))
	for _, al := range r.Alarms {
		active = append(active, al.Code)
		if slices.Contains(a.st.ActiveAlarms, al.Code) {
			continue
		}
		raised = append(raised, protocol.Alarm{Code: al.Code, Text: al.Text, At: now.UTC()})
		a.queueEvent(protocol.Event{Kind: protocol.EventAlarm, At: now.UTC(), Code: al.Code, Text: al.Text, Cycle: r.Counter})
	}
	a.st.ActiveAlarms = active
	return raised
}

// implausibleEdges queues an implausible_value event for each measured
// field that became implausible, naming the likely cause.
func (a *Assembler) implausibleEdges(r profile.Reading, now time.Time) {
	var active []string
	for _, v := range r.Implausible {
		active = append(active, v.Field)
		if slices.Contains(a.st.Implausible, v.Field) {
			continue
		}
		cause := a.prof.Diagnose(v)
		if a.plausibleSeen[v.Field] {
			cause = "it read plausibly until now: the sensor has probably failed or left its range"
		}
		ev := protocol.Event{Kind: protocol.EventImplausibleValue, At: now.UTC(), Cycle: r.Counter,
			Field: v.Field, Registers: v.Registers, Text: fmt.Sprintf("%v; not recorded; %s", v, cause)}
		if !math.IsNaN(v.Value) && !math.IsInf(v.Value, 0) {
			val := v.Value
			ev.Value = &val
		}
		a.log.Warn("implausible value refused", "field", v.Field, "role", v.Role, "value", v.Value, "cause", cause)
		a.queueEvent(ev)
	}
	for _, c := range a.prof.Channels {
		if !slices.Contains(active, c.Field) {
			a.plausibleSeen[c.Field] = true
		}
	}
	for _, role := range []profile.Role{profile.RoleChamberTemperature, profile.RoleChamberPressure} {
		if f := a.prof.RoleField[role]; !slices.Contains(active, f) {
			a.plausibleSeen[f] = true
		}
	}
	a.st.Implausible = active
}

func (a *Assembler) queueEvent(ev protocol.Event) {
	ev.Device = a.cfg.Device
	a.events = append(a.events, ev)
	if over := len(a.events) - maxQueued; over > 0 {
		a.events = a.events[over:]
	}
}

// deliver hands everything due to the sink: first the state (so a crash
// after a record was built cannot lose it), then records, events and
// telemetry, then the state again without the delivered records.
func (a *Assembler) deliver(ctx context.Context, now time.Time) error {
	var errs []error
	hadPending := len(a.st.Pending) > 0
	if hadPending {
		if err := a.save(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	for len(a.st.Pending) > 0 {
		rec := a.st.Pending[0]
		if err := a.sink.Cycle(ctx, rec); err != nil {
			errs = append(errs, fmt.Errorf("cycle %s: deliver record of cycle %d: %w", a.cfg.Device, rec.Cycle, err))
			break
		}
		a.st.Pending = a.st.Pending[1:]
	}
	if len(a.st.Pending) == 0 {
		a.st.Pending = nil
	}
	for len(a.events) > 0 {
		if err := a.sink.Event(ctx, a.events[0]); err != nil {
			errs = append(errs, fmt.Errorf("cycle %s: deliver %s event: %w", a.cfg.Device, a.events[0].Kind, err))
			break
		}
		a.events = a.events[1:]
	}
	if n := len(a.telemetry); n > 0 && (n >= a.cfg.TelemetryMaxSamples || now.Sub(a.telemetry[0].At) >= a.cfg.TelemetryInterval) {
		batch := protocol.Telemetry{Device: a.cfg.Device, Samples: slices.Clone(a.telemetry)}
		if c := a.st.Current; c != nil && c.Ended == 0 {
			batch.Cycle = c.Counter
		}
		if err := a.sink.Telemetry(ctx, batch); err != nil {
			errs = append(errs, fmt.Errorf("cycle %s: deliver telemetry: %w", a.cfg.Device, err))
		} else {
			a.telemetry = a.telemetry[:0]
		}
	}
	if err := a.save(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Link reports the device's connection state as the assembler last saw it:
// protocol.DeviceOnline, DeviceOffline, or DeviceUnknown before the first poll.
func (a *Assembler) Link() string {
	if a.link == "" {
		return protocol.DeviceUnknown
	}
	return a.link
}
