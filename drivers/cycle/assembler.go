// Package cycle assembles what a driver polls from a sterilizer into
// sterigate's outputs: phase, alarm and connection events, batches of live
// telemetry, and one protocol.CycleRecord per finished cycle.
//
// The assembler's working state (the half-assembled cycle, the last cycle it
// recorded, records the sink has not accepted yet) is saved through
// protocol.StateStore after every observation, so a gateway killed in the
// middle of a cycle picks the same cycle up after a restart and still
// produces exactly one record for it.
package cycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/sterigate/sterigate/drivers/profile"
	"github.com/sterigate/sterigate/protocol"
)

// Defaults for Config.
const (
	DefaultTelemetryInterval   = 5 * time.Second
	DefaultTelemetryMaxSamples = 10
	DefaultMaxSampleGap        = 10 * time.Second
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
	// MaxSampleGap: two consecutive samples of a cycle further apart than
	// this (device unreachable, gateway down) mean the gateway did not see
	// the whole cycle, and its record says complete: false. Default 10 s.
	MaxSampleGap time.Duration
	// Now is the clock (nil: time.Now); tests inject a scripted one.
	Now func() time.Time
}

// Assembler turns one device's readings into events, telemetry and cycle
// records. It is not safe for concurrent use: the link owner's goroutine
// calls Observe and Unreachable.
type Assembler struct {
	cfg   Config
	prof  *profile.Profile
	sink  protocol.Sink
	store protocol.StateStore
	log   *slog.Logger

	loaded bool
	st     state

	link      string // "", protocol.DeviceOnline or protocol.DeviceOffline
	telemetry []protocol.Sample
	events    []protocol.Event
	dropped   int // telemetry samples dropped because the sink refused them for too long
}

// New returns an assembler for cfg.Device. Its saved state is loaded on the
// first Observe or Unreachable. log must already name the device (the
// Modbus unit adds device and unit): adding it again here would put the
// key twice in every JSON log line.
func New(cfg Config, sink protocol.Sink, store protocol.StateStore, log *slog.Logger) (*Assembler, error) {
	switch {
	case cfg.Device == "":
		return nil, errors.New("cycle: device id is empty")
	case cfg.Profile == nil:
		return nil, fmt.Errorf("cycle %s: no profile", cfg.Device)
	case sink == nil || store == nil:
		return nil, fmt.Errorf("cycle %s: a sink and a state store are required", cfg.Device)
	}
	if cfg.TelemetryInterval <= 0 {
		cfg.TelemetryInterval = DefaultTelemetryInterval
	}
	if cfg.TelemetryMaxSamples <= 0 {
		cfg.TelemetryMaxSamples = DefaultTelemetryMaxSamples
	}
	if cfg.MaxSampleGap <= 0 {
		cfg.MaxSampleGap = DefaultMaxSampleGap
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Assembler{cfg: cfg, prof: cfg.Profile, sink: sink, store: store, log: log}, nil
}

// stateVersion changes when the saved layout changes incompatibly.
const stateVersion = 2

// samplesPerChunk: a poll rewrites at most one chunk of this many samples
// (about 7 KB of JSON). Without chunks, a one-hour cycle at 1 Hz rewrote
// ~270 KB per poll: ~0.5 GB per cycle of disk writes, which wears the SD
// and eMMC storage of small industrial PCs.
const samplesPerChunk = 120

// sampleChunk is one chunk of an open cycle's samples. Counter, Start and
// First tie it to its cycle, so a chunk left over from an earlier cycle is
// never mistaken for this one's.
type sampleChunk struct {
	Counter uint64          `json:"counter"`
	Start   int64           `json:"start_ms"`
	First   int             `json:"first"`
	Samples []compactSample `json:"samples"`
}

func (a *Assembler) chunkKey(k int) string {
	// Device ids cannot contain '/' (they are MQTT topic levels), so no
	// other device's key can look like this.
	return fmt.Sprintf("%s/cycle-samples/%d", a.cfg.Device, k)
}

// state is what survives a restart. JSON, opaque to the store.
type state struct {
	Version int `json:"v"`
	// Baselined is false until the first reading ever: that reading's
	// finished-cycle counter becomes the baseline, so cycles that ended
	// before the gateway existed produce no record.
	Baselined bool `json:"baselined"`
	// Recorded is the highest cycle counter accounted for (a record or a
	// gap event was emitted for it).
	Recorded uint64 `json:"recorded"`
	// LastLatch is the last value of the last_cycle role seen.
	LastLatch uint64 `json:"last_latch"`
	// LastCounter / LastPhase / LastSeen describe the previous reading.
	LastCounter uint64             `json:"last_counter"`
	LastPhase   protocol.PhaseName `json:"last_phase,omitempty"`
	LastSeen    int64              `json:"last_seen_ms,omitempty"`
	// ActiveAlarms are the alarm codes active at the previous reading, so
	// an alarm event fires once per occurrence, also across restarts.
	ActiveAlarms []int `json:"active_alarms,omitempty"`
	// Current is the cycle being assembled, if any.
	Current *openCycle `json:"current,omitempty"`
	// Pending holds finished records the sink has not yet accepted.
	Pending []protocol.CycleRecord `json:"pending,omitempty"`
	// Epoch counts the device's counter resets; records carry it so that
	// counter values seen again get new ids instead of being taken for
	// re-deliveries of the old cycles.
	Epoch uint32 `json:"epoch,omitempty"`
}

// openCycle is a cycle in progress.
type openCycle struct {
	Counter     uint64 `json:"counter"`
	SawStart    bool   `json:"saw_start"`
	Gap         bool   `json:"gap,omitempty"` // samples missing somewhere in the middle
	Start       int64  `json:"start_ms"`      // first observation of the cycle, Unix ms
	Last        int64  `json:"last_ms"`       // latest observation of the cycle, Unix ms
	ProgramCode *int   `json:"program_code,omitempty"`
	// Samples are saved apart from the main state, in chunks of
	// samplesPerChunk under their own keys (see saveSamples), so a poll
	// rewrites a few KB instead of the whole cycle so far.
	Samples  []compactSample  `json:"-"`
	NSamples int              `json:"n_samples"`
	saved    int              // samples already durable in their chunks
	Alarms   []protocol.Alarm `json:"alarms,omitempty"`
}

// compactSample keeps the saved state small: it is rewritten on every poll.
type compactSample struct {
	At    int64              `json:"t"` // Unix milliseconds
	TempC float64            `json:"T"`
	KPa   float64            `json:"p"`
	Phase protocol.PhaseName `json:"ph"`
}

func (c compactSample) sample() protocol.Sample {
	return protocol.Sample{At: time.UnixMilli(c.At).UTC(), TempC: c.TempC, PressureKPa: c.KPa, Phase: c.Phase}
}

func (a *Assembler) load(ctx context.Context) error {
	if a.loaded {
		return nil
	}
	data, err := a.store.LoadState(ctx, a.cfg.Device)
	if err != nil {
		return fmt.Errorf("cycle %s: load state: %w", a.cfg.Device, err)
	}
	a.loaded = true
	if data == nil {
		a.st = state{Version: stateVersion}
		return nil
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil || st.Version != stateVersion {
		// Unreadable state must not stop the device from being logged:
		// start afresh (re-baseline) and say so loudly.
		a.log.Error("saved cycle state is unreadable; starting afresh, a cycle in progress will not be recorded", "err", err, "version", st.Version)
		a.st = state{Version: stateVersion}
		a.queueEvent(protocol.Event{Kind: protocol.EventGap, At: a.cfg.Now().UTC(), Text: "saved cycle state was unreadable; the gateway re-baselined on the device's counters"})
		return nil
	}
	// A saved record the sink would refuse forever would block every later
	// record of the device: drop it, loudly. Only a damaged state file can
	// hold one; the assembler never builds one.
	kept := st.Pending[:0]
	for _, rec := range st.Pending {
		if err := rec.Validate(); err != nil || rec.Device != a.cfg.Device {
			a.log.Error("saved cycle record is damaged; dropping it", "cycle", rec.Cycle, "err", err)
			a.queueEvent(protocol.Event{Kind: protocol.EventGap, At: a.cfg.Now().UTC(), Cycle: rec.Cycle,
				Text: fmt.Sprintf("the saved record of cycle %d was damaged and could not be delivered", rec.Cycle)})
			continue
		}
		kept = append(kept, rec)
	}
	st.Pending = kept
	if c := st.Current; c != nil {
		samples, complete, err := a.loadSamples(ctx, c)
		if err != nil {
			a.loaded = false
			return err
		}
		c.Samples, c.saved = samples, len(samples)
		if !complete {
			a.log.Error("saved samples of the open cycle are partly missing; its record will be marked incomplete", "cycle", c.Counter, "have", len(samples), "want", c.NSamples)
			c.Gap = true
		}
		if c.Start <= 0 || c.Last < c.Start { // damaged state: keep the cycle, with sane times
			c.Start = a.cfg.Now().UnixMilli()
			if len(c.Samples) > 0 {
				c.Start = c.Samples[0].At
			}
			c.Last = max(c.Last, c.Start)
			c.Gap = true
		}
		for i := range c.Samples {
			if !c.Samples[i].Phase.Valid() {
				c.Samples[i].Phase = protocol.PhaseUnknown // damaged state; keep the sample
			}
		}
	}
	a.st = st
	return nil
}

// loadSamples reads the chunks of the open cycle c. complete is false when
// a chunk is missing or belongs to another cycle (then only the samples
// before it are returned).
func (a *Assembler) loadSamples(ctx context.Context, c *openCycle) (samples []compactSample, complete bool, err error) {
	samples = []compactSample{}
	for k := 0; k*samplesPerChunk < c.NSamples; k++ {
		data, err := a.store.LoadState(ctx, a.chunkKey(k))
		if err != nil {
			return nil, false, fmt.Errorf("cycle %s: load samples: %w", a.cfg.Device, err)
		}
		var ch sampleChunk
		if data == nil || json.Unmarshal(data, &ch) != nil || ch.Counter != c.Counter || ch.Start != c.Start || ch.First != k*samplesPerChunk {
			return samples, false, nil
		}
		want := min(samplesPerChunk, c.NSamples-k*samplesPerChunk)
		if len(ch.Samples) < want {
			return append(samples, ch.Samples...), false, nil
		}
		samples = append(samples, ch.Samples[:want]...)
	}
	return samples, true, nil
}

// saveSamples writes the chunks holding samples not yet saved: usually
// just the last, partly filled one. It runs before the main state, which
// says how many samples count, so a crash in between loses nothing.
func (a *Assembler) saveSamples(ctx context.Context) error {
	c := a.st.Current
	if c == nil {
		return nil
	}
	for k := c.saved / samplesPerChunk; k*samplesPerChunk < len(c.Samples); k++ {
		first := k * samplesPerChunk
		ch := sampleChunk{Counter: c.Counter, Start: c.Start, First: first, Samples: c.Samples[first:min(len(c.Samples), first+samplesPerChunk)]}
		data, err := json.Marshal(&ch)
		if err != nil {
			return fmt.Errorf("cycle %s: encode samples: %w", a.cfg.Device, err)
		}
		if err := a.store.SaveState(ctx, a.chunkKey(k), data); err != nil {
			return fmt.Errorf("cycle %s: save samples: %w", a.cfg.Device, err)
		}
	}
	c.saved = len(c.Samples)
	c.NSamples = len(c.Samples)
	return nil
}

func (a *Assembler) save(ctx context.Context) error {
	if err := a.saveSamples(ctx); err != nil {
		return err
	}
	data, err := json.Marshal(&a.st)
	if err != nil {
		return fmt.Errorf("cycle %s: encode state: %w", a.cfg.Device, err)
	}
	if err := a.store.SaveState(ctx, a.cfg.Device, data); err != nil {
		return fmt.Errorf("cycle %s: save state: %w", a.cfg.Device, err)
	}
	return nil
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
	if a.link != protocol.DeviceOnline {
		a.link = protocol.DeviceOnline
		a.queueEvent(protocol.Event{Kind: protocol.EventOnline, At: now.UTC(), Cycle: r.Counter})
	}
	smp := compactSample{At: nowMs, TempC: r.TempC, KPa: r.PressureKPa, Phase: r.Phase}
	if !r.HasPhase {
		smp.Phase = protocol.PhaseUnknown
	}
	recent := a.st.LastSeen != 0 && time.Duration(nowMs-a.st.LastSeen)*time.Millisecond <= a.cfg.MaxSampleGap
	firstEver := !a.st.Baselined

	if r.HasPhase && smp.Phase != a.st.LastPhase {
		a.queueEvent(protocol.Event{Kind: protocol.EventPhase, At: now.UTC(), Phase: smp.Phase, Cycle: r.Counter, Code: r.PhaseCode})
	}
	newAlarms := a.alarmEdges(r, now)

	switch a.prof.CycleEnd.On {
	case profile.EndOnLastCycleChange:
		a.stepLatched(r, smp, now, recent, firstEver)
	case profile.EndOnCounterChange:
		a.stepCounter(r, smp, now, recent, firstEver)
	case profile.EndOnPhaseEnters:
		a.stepPhase(r, smp, now, recent, firstEver)
	}
	if a.st.Current != nil {
		a.st.Current.Alarms = append(a.st.Current.Alarms, newAlarms...)
	}
	a.st.Baselined = true
	a.st.LastCounter = r.Counter
	a.st.LastPhase = smp.Phase
	a.st.LastSeen = nowMs

	if r.BadMeasurement == nil {
		a.telemetry = append(a.telemetry, smp.sample())
	}
	if over := len(a.telemetry) - maxQueued; over > 0 {
		a.telemetry = a.telemetry[over:]
		a.dropped += over
	}
	return a.deliver(ctx, now)
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

// stepLatched implements cycle_end: last_cycle_change.
func (a *Assembler) stepLatched(r profile.Reading, smp compactSample, now time.Time, recent, firstEver bool) {
	if firstEver {
		a.st.LastLatch, a.st.Recorded = r.LastCycle, r.LastCycle
		if r.Counter > r.LastCycle {
			a.open(r, smp, false) // the device is mid-cycle: we missed its start
		}
		return
	}
	if cur := a.st.Current; cur != nil && r.Counter == cur.Counter {
		a.addSample(r, smp, recent)
	}
	if r.LastCycle < a.st.LastLatch {
		// Counter reset or device replaced: whatever was open will never
		// be latched; record it as it is and re-baseline.
		a.counterReset(r.LastCycle, now)
		if cur := a.st.Current; cur != nil {
			a.finish(nil, cur.ProgramCode, false, time.UnixMilli(cur.Last))
		}
		a.st.LastLatch, a.st.Recorded = r.LastCycle, r.LastCycle
		a.st.Epoch++
	}
	if r.LastCycle > a.st.LastLatch {
		finished := r.LastCycle
		a.st.LastLatch = finished
		if cur := a.st.Current; cur != nil && cur.Counter <= finished {
			var res *int
			prog := cur.ProgramCode
			if cur.Counter == finished {
				if r.HasLastResult {
					res = intPtr(r.LastResultCode)
				}
				if r.HasLastProgram {
					prog = intPtr(r.LastProgram)
				}
			}
			a.finish(res, prog, cur.Counter == finished, now)
		}
		if finished > a.st.Recorded && (r.HasLastResult || r.HasLastProgram) {
			// The whole cycle ran while the gateway could not see the
			// device (link down, gateway stopped), but the device still
			// latches its verdict: record that, marked incomplete, rather
			// than nothing. Only cycles before it are truly unknown.
			a.gapUpTo(finished-1, now, "finished while the gateway was not watching it; no samples, no record")
			a.recordLatchedOnly(finished, r, now)
		}
		a.gapUpTo(finished, now, "finished while the gateway was not watching it; no samples, no record")
	}
	if cur := a.st.Current; cur != nil && r.Counter > cur.Counter {
		// The device started another cycle without latching this one
		// (power cut, abort the device does not report): it will not be
		// latched any more, so record it now, end unseen.
		a.finish(nil, cur.ProgramCode, false, time.UnixMilli(cur.Last))
	}
	if a.st.Current == nil && r.Counter > a.st.Recorded && r.Counter > a.st.LastLatch {
		// A cycle newer than any finished one is running. We saw it start
		// when the previous reading (recent) showed another counter.
		a.open(r, smp, recent && a.st.LastCounter != r.Counter)
	}
}

// stepCounter implements cycle_end: counter_change. The counter counts
// finished cycles: when it moves from N-1 to N, cycle N has just finished.
// The cycle in progress is therefore number counter+1, and samples in idle
// phases belong to no cycle.
func (a *Assembler) stepCounter(r profile.Reading, smp compactSample, now time.Time, recent, firstEver bool) {
	idle := !r.HasPhase || a.prof.IsIdle(r.Phase)
	if firstEver {
		a.st.Recorded = r.Counter
		if !idle {
			a.openAs(r.Counter+1, r, smp, false)
		}
		return
	}
	if r.Counter < a.st.LastCounter {
		a.counterReset(r.Counter, now)
		a.st.Recorded = r.Counter
		if cur := a.st.Current; cur != nil {
			a.finish(nil, cur.ProgramCode, false, time.UnixMilli(lastAt(cur)))
			a.st.Recorded = r.Counter
		}
		a.st.Epoch++
	}
	if cur := a.st.Current; cur != nil && !idle && r.Counter == a.st.LastCounter {
		a.addSample(r, smp, recent)
	}
	if r.Counter > a.st.LastCounter {
		finished := r.Counter
		if cur := a.st.Current; cur != nil {
			if !idle {
				a.addSample(r, smp, recent)
			}
			var res *int
			sawEnd := cur.Counter == finished && recent
			if cur.Counter == finished && r.HasLastResult {
				res = intPtr(r.LastResultCode)
			}
			a.finish(res, cur.ProgramCode, sawEnd, now)
		}
		a.gapUpTo(finished, now, "finished while the gateway was not watching it; no samples, no record")
		return
	}
	if a.st.Current == nil && !idle && r.Counter+1 > a.st.Recorded {
		a.openAs(r.Counter+1, r, smp, recent && a.prof.IsIdle(a.st.LastPhase))
	}
}

// stepPhase implements cycle_end: phase_enters.
func (a *Assembler) stepPhase(r profile.Reading, smp compactSample, now time.Time, recent, firstEver bool) {
	isEnd := slices.Contains(a.prof.CycleEnd.Phases, r.Phase)
	wasEnd := slices.Contains(a.prof.CycleEnd.Phases, a.st.LastPhase)
	idle := a.prof.IsIdle(r.Phase)
	if firstEver {
		a.st.Recorded = r.Counter
		if !idle && !isEnd {
			a.st.Recorded = r.Counter - min(r.Counter, 1)
			a.open(r, smp, false)
		}
		return
	}
	if r.Counter < a.st.LastCounter {
		a.counterReset(r.Counter, now)
		if cur := a.st.Current; cur != nil {
			a.finish(nil, cur.ProgramCode, false, time.UnixMilli(cur.Last))
		}
		a.st.Recorded = r.Counter - min(r.Counter, 1)
		if idle || isEnd {
			a.st.Recorded = r.Counter
		}
		a.st.Epoch++
	}
	if cur := a.st.Current; cur != nil {
		a.addSample(r, smp, recent)
		if isEnd && !wasEnd {
			var res *int
			if r.HasLastResult {
				res = intPtr(r.LastResultCode)
			}
			a.finish(res, cur.ProgramCode, true, now)
		} else if r.Counter > cur.Counter {
			// The device moved on to another cycle without showing an end
			// phase we saw (it passed between two polls).
			a.finish(nil, cur.ProgramCode, false, time.UnixMilli(lastAt(cur)))
		} else {
			return
		}
	}
	if !idle && !isEnd && r.Counter > a.st.Recorded {
		if r.Counter > 0 {
			a.gapUpTo(r.Counter-1, now, "ran while the gateway was not watching it; no samples, no record")
		}
		a.open(r, smp, recent && (a.prof.IsIdle(a.st.LastPhase) || wasEnd || a.st.LastCounter != r.Counter))
	}
}

func lastAt(c *openCycle) int64 { return c.Last }

func intPtr(v int) *int { return &v }

func (a *Assembler) open(r profile.Reading, smp compactSample, sawStart bool) {
	a.openAs(r.Counter, r, smp, sawStart)
}

func (a *Assembler) openAs(counter uint64, r profile.Reading, smp compactSample, sawStart bool) {
	c := &openCycle{Counter: counter, SawStart: sawStart, Start: smp.At, Last: smp.At, Samples: []compactSample{}}
	if r.BadMeasurement == nil {
		c.Samples = append(c.Samples, smp)
	} else {
		c.Gap = true
	}
	if r.HasProgram {
		c.ProgramCode = intPtr(r.ProgramCode)
	}
	a.st.Current = c
}

func (a *Assembler) addSample(r profile.Reading, smp compactSample, recent bool) {
	c := a.st.Current
	if !recent {
		c.Gap = true
	}
	if c.ProgramCode == nil && r.HasProgram {
		c.ProgramCode = intPtr(r.ProgramCode)
	}
	c.Last = smp.At
	if r.BadMeasurement != nil {
		c.Gap = true // the record will lack this poll's sample
		return
	}
	c.Samples = append(c.Samples, smp)
}

// finish turns the current cycle into a record queued for delivery.
func (a *Assembler) finish(resultCode, programCode *int, sawEnd bool, endedAt time.Time) {
	c := a.st.Current
	a.st.Current = nil
	rec := protocol.CycleRecord{
		Device:      a.cfg.Device,
		Cycle:       c.Counter,
		Program:     "unknown",
		ProgramCode: programCode,
		Result:      protocol.ResultUnknown,
		ResultCode:  resultCode,
		Complete:    c.SawStart && !c.Gap && sawEnd,
		Source:      a.cfg.Source,
		Alarms:      c.Alarms,
		// A record finished by a counter reset still belongs to the old
		// epoch: callers bump Epoch after finishing it.
		CounterEpoch: a.st.Epoch,
	}
	if programCode != nil {
		rec.Program = a.prof.ProgramName(*programCode)
	}
	if resultCode != nil {
		if res, ok := a.prof.Results[*resultCode]; ok {
			rec.Result = res
		}
	}
	if rec.Alarms == nil {
		rec.Alarms = []protocol.Alarm{}
	}
	rec.Samples = make([]protocol.Sample, len(c.Samples))
	for i, s := range c.Samples {
		rec.Samples[i] = s.sample()
	}
	rec.StartedAt = time.UnixMilli(c.Start).UTC()
	rec.EndedAt = endedAt.UTC()
	if last := time.UnixMilli(c.Last).UTC(); rec.EndedAt.Before(last) {
		rec.EndedAt = last
	}
	rec.Phases = phasesOf(rec.Samples, rec.EndedAt)
	if rec.Phases == nil {
		rec.Phases = []protocol.Phase{}
	}
	a.st.Recorded = max(a.st.Recorded, c.Counter)
	a.st.Pending = append(a.st.Pending, rec)
}

// recordLatchedOnly records a cycle the gateway saw none of, from what the
// device latched about it: counter, program and verdict. It has no samples
// and no phases, and is marked incomplete; its times are when the gateway
// learned of it.
func (a *Assembler) recordLatchedOnly(counter uint64, r profile.Reading, now time.Time) {
	rec := protocol.CycleRecord{
		Device: a.cfg.Device, Cycle: counter, Program: "unknown", Result: protocol.ResultUnknown,
		StartedAt: now.UTC(), EndedAt: now.UTC(), Source: a.cfg.Source, CounterEpoch: a.st.Epoch,
		Phases: []protocol.Phase{}, Samples: []protocol.Sample{}, Alarms: []protocol.Alarm{},
	}
	if r.HasLastProgram {
		rec.ProgramCode = intPtr(r.LastProgram)
		rec.Program = a.prof.ProgramName(r.LastProgram)
	}
	if r.HasLastResult {
		rec.ResultCode = intPtr(r.LastResultCode)
		if res, ok := a.prof.Results[r.LastResultCode]; ok {
			rec.Result = res
		}
	}
	a.log.Warn("cycle ran while the gateway could not see the device; recording the device's latched verdict only",
		"cycle", counter, "result", rec.Result)
	a.st.Recorded = max(a.st.Recorded, counter)
	a.st.Pending = append(a.st.Pending, rec)
}

// phasesOf cuts samples into contiguous phase spans. A span ends where the
// next begins (the last one at the cycle's end).
func phasesOf(samples []protocol.Sample, end time.Time) []protocol.Phase {
	var out []protocol.Phase
	for _, s := range samples {
		if n := len(out); n == 0 || out[n-1].Name != s.Phase {
			if n > 0 {
				out[n-1].End = s.At
			}
			out = append(out, protocol.Phase{Name: s.Phase, Start: s.At})
		}
		out[len(out)-1].Observe(s)
	}
	if n := len(out); n > 0 {
		out[n-1].End = end
	}
	return out
}

// gapUpTo accounts for cycles up to and including last that finished
// without the gateway holding any data for them: one gap event.
func (a *Assembler) gapUpTo(last uint64, now time.Time, why string) {
	if a.st.Current != nil && a.st.Current.Counter <= last {
		return // never call a cycle we hold data for a gap
	}
	if last <= a.st.Recorded {
		return
	}
	first := a.st.Recorded + 1
	text := fmt.Sprintf("cycle %d %s", first, why)
	if last > first {
		text = fmt.Sprintf("cycles %d-%d %s", first, last, why)
	}
	a.log.Warn("device cycles without a record", "from", first, "to", last)
	a.queueEvent(protocol.Event{Kind: protocol.EventGap, At: now.UTC(), Cycle: last, Text: text})
	a.st.Recorded = last
}

func (a *Assembler) counterReset(to uint64, now time.Time) {
	text := fmt.Sprintf("the device's cycle counter went back from %d to %d (counter reset or device replaced); counting restarts from there, with record ids in counter epoch %d", max(a.st.Recorded, a.st.LastCounter), to, a.st.Epoch+1)
	a.log.Warn(text)
	a.queueEvent(protocol.Event{Kind: protocol.EventGap, At: now.UTC(), Cycle: to, Text: text})
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
		if a.st.Current != nil {
			batch.Cycle = a.st.Current.Counter
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

// Unreachable records that the device could not be reached: one offline
// event per outage. A cycle in progress stays open; the missing samples
// mark its record incomplete.
func (a *Assembler) Unreachable(ctx context.Context, cause error) {
	if err := a.load(ctx); err != nil {
		a.log.Warn("cycle state", "err", err)
	}
	now := a.cfg.Now()
	if a.link != protocol.DeviceOffline {
		a.link = protocol.DeviceOffline
		text := "device does not answer"
		if cause != nil {
			text = cause.Error()
		}
		a.queueEvent(protocol.Event{Kind: protocol.EventOffline, At: now.UTC(), Text: text, Cycle: a.st.LastCounter})
	}
	if !a.loaded {
		return
	}
	// Retry what is pending; a sink that came back should not wait for the device.
	if err := a.deliver(ctx, now); err != nil {
		a.log.Warn("delivery while the device is unreachable", "err", err)
	}
}

// Link reports the device's connection state as the assembler last saw it:
// protocol.DeviceOnline, DeviceOffline, or DeviceUnknown before the first poll.
func (a *Assembler) Link() string {
	if a.link == "" {
		return protocol.DeviceUnknown
	}
	return a.link
}
