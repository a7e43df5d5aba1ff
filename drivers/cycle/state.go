package cycle

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/sterigate/sterigate/protocol"
)

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

// encodedChunk holds the JSON of the samples of the chunk saved last. A
// sample never changes once taken, so a poll encodes only its own sample
// and copies the others: formatting every float of a 120-sample chunk with
// several channels on every poll cost more than all the rest of a poll.
type encodedChunk struct {
	counter uint64
	start   int64
	first   int
	n       int    // samples encoded in body
	body    []byte // their JSON, comma-separated
}

// chunkJSON returns the chunk's JSON (as encoding/json reads it back) in
// a fresh slice the store may keep.
func (e *encodedChunk) chunkJSON(ch *sampleChunk) []byte {
	if e.counter != ch.Counter || e.start != ch.Start || e.first != ch.First || e.n > len(ch.Samples) {
		*e = encodedChunk{counter: ch.Counter, start: ch.Start, first: ch.First, body: e.body[:0]}
	}
	for _, s := range ch.Samples[e.n:] {
		if e.n > 0 {
			e.body = append(e.body, ',')
		}
		e.body = s.appendJSON(e.body)
		e.n++
	}
	b := make([]byte, 0, len(e.body)+80)
	b = append(b, `{"counter":`...)
	b = strconv.AppendUint(b, ch.Counter, 10)
	b = append(b, `,"start_ms":`...)
	b = strconv.AppendInt(b, ch.Start, 10)
	b = append(b, `,"first":`...)
	b = strconv.AppendInt(b, int64(ch.First), 10)
	b = append(b, `,"samples":[`...)
	b = append(b, e.body...)
	return append(b, "]}"...)
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
	// LastActive is the last time the link owner reported anything about
	// the device (a reading or a failed poll). After a restart, the time
	// from it to the first report is when the gateway was down.
	LastActive int64 `json:"last_active_ms,omitempty"`
	// ActiveAlarms are the alarm codes active at the previous reading, so
	// an alarm event fires once per occurrence, also across restarts.
	ActiveAlarms []int `json:"active_alarms,omitempty"`
	// Implausible are the fields implausible at the previous reading, so
	// an implausible_value event fires once per occurrence.
	Implausible []string `json:"implausible,omitempty"`
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
	Counter  uint64 `json:"counter"`
	SawStart bool   `json:"saw_start"`
	// Gap is set when saved samples were lost (damaged state storage):
	// the record cannot be complete, though no hole can say where.
	Gap         bool  `json:"gap,omitempty"`
	Start       int64 `json:"start_ms"` // first observation of the cycle, Unix ms
	Last        int64 `json:"last_ms"`  // latest observation of the cycle, Unix ms
	ProgramCode *int  `json:"program_code,omitempty"`
	// Covered is where the stretch of the cycle accounted for by samples
	// (or by polls showing the device idle) ends: the latest such poll,
	// Unix ms. Missing says why no sample came since; a stretch longer
	// than the max sample gap becomes Holes when it closes.
	Covered int64           `json:"covered_ms,omitempty"`
	Missing []holePart      `json:"missing,omitempty"`
	Holes   []protocol.Hole `json:"holes,omitempty"`
	// Ended (next_cycle_starts) is when the device stopped running the
	// cycle, Unix ms; the record waits for the counter to move on for its
	// verdict. EndSeen: the gateway was watching when it happened.
	Ended   int64 `json:"ended_ms,omitempty"`
	EndSeen bool  `json:"end_seen,omitempty"`
	// ChIDs are the cycle's other channels (the profile's when it
	// opened), in the order of each sample's Ch.
	ChIDs []string `json:"channels,omitempty"`
	// Samples are saved apart from the main state, in chunks of
	// samplesPerChunk under their own keys (see saveSamples), so a poll
	// rewrites a few KB instead of the whole cycle so far.
	Samples  []compactSample  `json:"-"`
	NSamples int              `json:"n_samples"`
	saved    int              // samples already durable in their chunks
	Alarms   []protocol.Alarm `json:"alarms,omitempty"`
}

// holePart starts a stretch without samples for one reason. The parts of
// an open stretch follow each other; the first one reaches back to the
// last sample.
type holePart struct {
	From   int64  `json:"from_ms"`
	Reason string `json:"reason"`
}

// compactSample keeps the saved state small: the open chunk is rewritten
// on every poll. Its JSON is written by hand (appendJSON), without
// reflection: {"t":ms,"T":°C,"p":kPa,"ph":"phase","c":[channels]}.
type compactSample struct {
	At    int64 // Unix milliseconds
	TempC float64
	KPa   float64
	Phase protocol.PhaseName
	// Ch holds the cycle's other channels in the order of its ChIDs;
	// NaN where a channel was not read (implausible). Nil without channels.
	Ch []float64
}

// compactOf keeps s for a cycle whose channels are ids.
func compactOf(s protocol.Sample, ids []string) compactSample {
	c := compactSample{At: s.At.UnixMilli(), TempC: s.TempC, KPa: s.PressureKPa, Phase: s.Phase}
	if len(ids) > 0 {
		c.Ch = make([]float64, len(ids))
		for i, id := range ids {
			v, ok := s.Ch[id]
			if !ok {
				v = math.NaN()
			}
			c.Ch[i] = v
		}
	}
	return c
}

// sample gives the record's sample back; ids are the cycle's channels.
func (c compactSample) sample(ids []string) protocol.Sample {
	s := protocol.Sample{At: time.UnixMilli(c.At).UTC(), TempC: c.TempC, PressureKPa: c.KPa, Phase: c.Phase}
	for i, v := range c.Ch {
		if i >= len(ids) || math.IsNaN(v) {
			continue
		}
		if s.Ch == nil {
			s.Ch = make(map[string]float64, len(c.Ch))
		}
		s.Ch[ids[i]] = v
	}
	return s
}

func (c compactSample) appendJSON(b []byte) []byte {
	b = append(b, `{"t":`...)
	b = strconv.AppendInt(b, c.At, 10)
	b = append(b, `,"T":`...)
	b = appendNumber(b, c.TempC)
	b = append(b, `,"p":`...)
	b = appendNumber(b, c.KPa)
	ph := c.Phase
	if !ph.Valid() {
		ph = protocol.PhaseUnknown // the vocabulary needs no escaping
	}
	b = append(b, `,"ph":"`...)
	b = append(b, ph...)
	b = append(b, '"')
	if len(c.Ch) > 0 {
		b = append(b, `,"c":[`...)
		for i, v := range c.Ch {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendNumber(b, v)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// appendNumber writes v as JSON; a value that is no number (a channel not
// read) as null.
func appendNumber(b []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// UnmarshalJSON reads what appendJSON wrote.
func (c *compactSample) UnmarshalJSON(data []byte) error {
	var raw struct {
		At    int64              `json:"t"`
		TempC float64            `json:"T"`
		KPa   float64            `json:"p"`
		Phase protocol.PhaseName `json:"ph"`
		Ch    []*float64         `json:"c"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	*c = compactSample{At: raw.At, TempC: raw.TempC, KPa: raw.KPa, Phase: raw.Phase}
	for _, v := range raw.Ch {
		x := math.NaN()
		if v != nil {
			x = *v
		}
		c.Ch = append(c.Ch, x)
	}
	return nil
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
		if c.Covered < c.Start || c.Covered > c.Last {
			c.Covered = c.Start // a state saved before holes were tracked, or damaged
			if n := len(c.Samples); n > 0 {
				c.Covered = max(c.Start, min(c.Samples[n-1].At, c.Last))
			}
		}
		if c.Ended != 0 && (c.Ended < c.Start || c.Ended > c.Last) {
			c.Ended = c.Last
		}
		kept := c.Holes[:0]
		for _, h := range c.Holes {
			if h.To.After(h.From) && h.From.UnixMilli() >= c.Start && h.To.UnixMilli() <= c.Last {
				kept = append(kept, h)
				continue
			}
			c.Gap = true // damaged state: a hole we cannot place still makes the record incomplete
		}
		c.Holes = kept
		// The gateway was down from its last report until now: the first
		// report after this load adds that part to the open stretch.
		a.resumed = true
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

// save writes the state and, before it in the same call, the chunks
// holding samples not yet saved (usually just the last, partly filled
// one): the state says how many samples count, and one call (one durable
// write) holds both, so a crash can lose neither alone.
func (a *Assembler) save(ctx context.Context) error {
	var states []protocol.SavedState
	c := a.st.Current
	var nBefore int
	if c != nil {
		for k := c.saved / samplesPerChunk; k*samplesPerChunk < len(c.Samples); k++ {
			first := k * samplesPerChunk
			ch := sampleChunk{Counter: c.Counter, Start: c.Start, First: first, Samples: c.Samples[first:min(len(c.Samples), first+samplesPerChunk)]}
			states = append(states, protocol.SavedState{Key: a.chunkKey(k), State: a.encoded.chunkJSON(&ch)})
		}
		nBefore = c.NSamples
		c.NSamples = len(c.Samples)
	}
	data, err := json.Marshal(&a.st)
	if err == nil {
		err = a.store.SaveStates(ctx, append(states, protocol.SavedState{Key: a.cfg.Device, State: data}))
	}
	if err != nil {
		if c != nil {
			c.NSamples = nBefore
		}
		return fmt.Errorf("cycle %s: save state: %w", a.cfg.Device, err)
	}
	if c != nil {
		c.saved = len(c.Samples)
	}
	return nil
}
