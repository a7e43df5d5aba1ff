package learn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/sterigate/sterigate/drivers/modbus"
	"github.com/sterigate/sterigate/protocol"
)

// Defaults of RecordOptions.
const (
	DefaultDuration = 2 * time.Hour
	DefaultTail     = time.Minute
	// silenceLimit stops a recording whose device has not answered for
	// this long (device time): the link is gone, not the cycle.
	silenceLimit = 5 * time.Minute
)

// RecordOptions configures Record.
type RecordOptions struct {
	Unit   byte
	Device string // the link, for the recording's header
	Blocks []Block
	Scan   *ScanSummary
	// TimeScale is device seconds per wall-clock second: 1 on a real
	// device; the simulator's --speed in a rehearsal, so that a round is
	// taken every device second and times are device times.
	TimeScale float64
	// Interval is the device time between rounds (default 1 s). A round
	// that needs more requests than Rate allows in that time takes longer.
	Interval time.Duration
	Rate     float64 // requests per wall-clock second (0: DefaultRate; negative: no pacing)
	// Duration bounds the recording in device time (0: DefaultDuration).
	Duration time.Duration
	// Tail is recorded after the end of a cycle is recognised (device
	// time; 0: DefaultTail), to catch the latched registers settling.
	Tail time.Duration
	// Out receives the recording file; nil keeps it in memory only.
	Out   io.Writer
	Clock Clock
	// Progress, when set, is called after every round.
	Progress func(Progress)
	// LiveEvery is the wall-clock time between two live analyses (for the
	// phases shown and to recognise the end; default 10 s).
	LiveEvery time.Duration
	// StartedAt is written in the header (default: the clock's now).
	StartedAt time.Time

	// syncLive runs the live analysis inside the round instead of beside
	// it: tests on a simulated clock need the end recognised at a
	// reproducible moment.
	syncLive bool
}

// Progress is where a recording is, for the live display.
type Progress struct {
	Elapsed   float64 // device seconds
	Duration  float64 // device seconds
	Samples   int
	Registers int
	Changed   int // registers that changed since the first round
	Failed    int // reads that failed so far
	Phases    []protocol.PhaseName
	EndSeen   bool
	EndAt     float64
	Stop      string // set on the last call
}

// Record reads every block once per round until the end of a cycle is
// recognised (plus the tail), the duration is reached, or ctx is done; it
// writes every round to opts.Out as it goes. Stopping by ctx is a normal
// end (the user pressed Ctrl-C): the recording so far is returned with a
// nil error.
func Record(ctx context.Context, r modbus.RegisterReader, opts RecordOptions) (*Recording, error) {
	if len(opts.Blocks) == 0 {
		return nil, errors.New("record: nothing to read (the scan found no readable register)")
	}
	if opts.TimeScale <= 0 {
		opts.TimeScale = 1
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.Duration <= 0 {
		opts.Duration = DefaultDuration
	}
	if opts.Tail <= 0 {
		opts.Tail = DefaultTail
	}
	if opts.Rate == 0 {
		opts.Rate = DefaultRate
	}
	if opts.LiveEvery <= 0 {
		opts.LiveEvery = 10 * time.Second
	}
	clock := opts.Clock
	if clock == nil {
		clock = RealClock{}
	}
	if opts.StartedAt.IsZero() {
		opts.StartedAt = clock.Now()
	}
	rec := &Recording{Header: Header{Format: RecordingFormat, Version: RecordingVersion, Device: opts.Device, Unit: int(opts.Unit),
		StartedAt: opts.StartedAt.UTC(), TimeScale: opts.TimeScale, IntervalS: opts.Interval.Seconds(), Blocks: opts.Blocks, Scan: opts.Scan}}
	var out *RecordingWriter
	if opts.Out != nil {
		var err error
		if out, err = NewRecordingWriter(opts.Out, rec.Header); err != nil {
			return nil, fmt.Errorf("record: %w", err)
		}
	}
	pr := newPacedReader(r, opts.Unit, opts.Rate, clock)
	wallInterval := time.Duration(float64(opts.Interval) / opts.TimeScale)
	duration, tail := opts.Duration.Seconds(), opts.Tail.Seconds()

	live := newLiveAnalysis()
	defer live.stop()
	var (
		first      [][]uint16
		changed    = map[regKey]bool{}
		registers  int
		failed     int
		lastAnswer float64
		lastLive   time.Time
		latest     liveResult
		stop       string
	)
	for _, b := range opts.Blocks {
		registers += int(b.Count)
	}
	start := clock.Now()
	for round := 0; stop == ""; round++ {
		due := start.Add(time.Duration(round) * wallInterval)
		if wait := due.Sub(clock.Now()); wait > 0 {
			if clock.Sleep(ctx, wait) != nil {
				stop = "interrupted"
				break
			}
		}
		if ctx.Err() != nil {
			stop = "interrupted"
			break
		}
		s := Sample{T: clock.Now().Sub(start).Seconds() * opts.TimeScale, Values: make([][]uint16, len(opts.Blocks))}
		answered := false
		for i, b := range opts.Blocks {
			v, err := pr.read(ctx, b.Function, b.Start, b.Count)
			if ctx.Err() != nil {
				break
			}
			if err == nil && len(v) != int(b.Count) {
				err = fmt.Errorf("the device returned %d values for %d", len(v), b.Count)
			}
			if err != nil {
				if s.Errors == nil {
					s.Errors = make([]string, len(opts.Blocks))
				}
				s.Errors[i] = err.Error()
				failed++
				if modbus.AsException(err) != nil {
					answered = true
				}
				continue
			}
			answered = true
			s.Values[i] = v
		}
		if ctx.Err() != nil {
			stop = "interrupted"
			break // a partial round is not kept
		}
		rec.Samples = append(rec.Samples, s)
		if out != nil {
			if err := out.Sample(s); err != nil {
				return rec, fmt.Errorf("record: writing the recording: %w", err)
			}
		}
		if answered {
			lastAnswer = s.T
		}
		if first == nil && answered {
			first = s.Values
		}
		for i, v := range s.Values {
			if v == nil || first == nil || first[i] == nil {
				continue
			}
			b := opts.Blocks[i]
			for j := range v {
				if v[j] != first[i][j] {
					changed[regKey{b.Function, b.Start + uint16(j)}] = true
				}
			}
		}
		if res, ok := live.result(); ok {
			latest = res
		}
		// The live analysis of a large device takes seconds: it runs at
		// most a fifth of the time, so the recording PC stays responsive.
		if now := clock.Now(); now.Sub(lastLive) >= max(opts.LiveEvery, 5*latest.took) {
			if opts.syncLive {
				if len(rec.Samples) >= 30 {
					res := Analyse(rec)
					latest, lastLive = liveResult{phases: res.PhasesSeen, endSeen: res.EndSeen, endAt: res.EndAt}, now
				}
			} else if live.start(rec.Header, rec.Samples) {
				lastLive = now
			}
		}
		switch {
		case s.T >= duration:
			stop = "duration reached"
		case latest.endSeen && s.T >= latest.endAt+tail:
			stop = "end of cycle recognised"
		case s.T-lastAnswer >= silenceLimit.Seconds():
			stop = fmt.Sprintf("the device has not answered for %s", silenceLimit)
		}
		if opts.Progress != nil {
			opts.Progress(Progress{Elapsed: s.T, Duration: duration, Samples: len(rec.Samples), Registers: registers, Changed: len(changed),
				Failed: failed, Phases: latest.phases, EndSeen: latest.endSeen, EndAt: latest.endAt, Stop: stop})
		}
	}
	rec.Stop = stop
	if out != nil {
		if err := out.Stop(stop); err != nil {
			return rec, fmt.Errorf("record: writing the recording: %w", err)
		}
	}
	if len(rec.Samples) == 0 {
		return rec, errors.New("record: stopped before the first round")
	}
	if opts.Progress != nil && stop == "interrupted" {
		opts.Progress(Progress{Elapsed: rec.Samples[len(rec.Samples)-1].T, Duration: duration, Samples: len(rec.Samples), Registers: registers,
			Changed: len(changed), Failed: failed, Phases: latest.phases, EndSeen: latest.endSeen, EndAt: latest.endAt, Stop: stop})
	}
	return rec, nil
}

// liveResult is what the live analysis tells the recorder.
type liveResult struct {
	phases  []protocol.PhaseName
	endSeen bool
	endAt   float64
	took    time.Duration // wall-clock time the analysis took
}

// liveAnalysis runs Analyse on the recording so far in its own goroutine,
// one at a time, so a slow analysis of a large device never delays a round.
// Samples are never changed once appended, so the goroutine reads a prefix
// of the slice while the recorder appends behind it.
type liveAnalysis struct {
	wg      sync.WaitGroup
	busy    bool
	results chan liveResult
}

func newLiveAnalysis() *liveAnalysis { return &liveAnalysis{results: make(chan liveResult, 1)} }

func (l *liveAnalysis) start(h Header, samples []Sample) bool {
	if l.busy || len(samples) < 30 {
		return false
	}
	l.busy = true
	snapshot := &Recording{Header: h, Samples: samples[:len(samples):len(samples)]}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		began := time.Now()
		res := Analyse(snapshot)
		l.results <- liveResult{phases: res.PhasesSeen, endSeen: res.EndSeen, endAt: res.EndAt, took: time.Since(began)}
	}()
	return true
}

func (l *liveAnalysis) result() (liveResult, bool) {
	select {
	case r := <-l.results:
		l.busy = false
		return r, true
	default:
		return liveResult{}, false
	}
}

// stop waits for a running analysis (its result is dropped).
func (l *liveAnalysis) stop() {
	l.wg.Wait()
}
