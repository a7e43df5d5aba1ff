package sim

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/sterigate/sterigate/sim/autoclave"
)

// Truth is one line of the truth file: what really happened in one
// finished cycle, next to what the device reported. Temperatures °C,
// pressures kPa absolute, times on the device clock (Options.Epoch plus
// simulated time).
type Truth struct {
	Device      int      `json:"device"`
	Unit        int      `json:"unit"`
	Counter     uint32   `json:"counter"`
	Program     string   `json:"program"`
	ProgramCode uint16   `json:"program_code"`
	Fault       string   `json:"fault"` // the cycle's fault kinds, comma-separated; "" when healthy
	Faults      []string `json:"faults"`
	// What the device reported in its latched block.
	Result              string   `json:"result"`
	ResultCode          uint16   `json:"result_code"`
	AlarmCode           uint16   `json:"alarm_code"`
	HoldS               float64  `json:"hold_s"` // as register 23 shows it
	ReportedPlateauMinC *float64 `json:"reported_plateau_min_c"`
	ReportedPlateauMaxC *float64 `json:"reported_plateau_max_c"`
	// What really was, over the sterilizing phase (null when the cycle
	// never reached it).
	PlateauMinC      *float64 `json:"plateau_min_c"`
	PlateauMaxC      *float64 `json:"plateau_max_c"`
	PlateauMinKPa    *float64 `json:"plateau_min_kpa"`
	PlateauMaxKPa    *float64 `json:"plateau_max_kpa"`
	TrueHoldS        float64  `json:"true_hold_s"`
	MaxSatDeviationK float64  `json:"max_sat_deviation_k"` // largest Tsat(p) − T on the plateau
	MaxHeatingKMin   float64  `json:"max_heating_k_min"`
	// The load probe (register 13), truly: its extremes over the hold and
	// the equilibration time, from the chamber reaching the set point to
	// the load reaching it (null when either never did).
	LoadPlateauMinC *float64 `json:"load_plateau_min_c"`
	LoadPlateauMaxC *float64 `json:"load_plateau_max_c"`
	EquilibrationS  *float64 `json:"equilibration_s"`
	F0              float64  `json:"f0"`
	// Leak test only.
	LeakP1KPa      *float64 `json:"leak_p1_kpa,omitempty"`
	LeakP2KPa      *float64 `json:"leak_p2_kpa,omitempty"`
	LeakRateKPaMin *float64 `json:"leak_rate_kpa_min,omitempty"`
	// TruthVerdict is what the physics deserve ("passed" or "failed"); it
	// differs from Result for a lying device.
	TruthVerdict string       `json:"truth_verdict"`
	StartedAt    time.Time    `json:"started_at"`
	EndedAt      time.Time    `json:"ended_at"`
	Phases       []TruthPhase `json:"phases"`
	Alarms       []TruthAlarm `json:"alarms"`
	// WallEndedAt is the real time the line was written.
	WallEndedAt time.Time `json:"wall_ended_at"`
}

// TruthPhase is the start of one phase.
type TruthPhase struct {
	Name string    `json:"name"`
	At   time.Time `json:"at"`
}

// TruthAlarm is an alarm the device raised.
type TruthAlarm struct {
	Code uint16    `json:"code"`
	Text string    `json:"text"`
	At   time.Time `json:"at"`
}

func round(v float64, digits int) float64 {
	f := math.Pow(10, float64(digits))
	return math.Round(v*f) / f
}

func ptr(v float64, digits int) *float64 {
	r := round(v, digits)
	return &r
}

func (s *Simulator) truth(u *unit, r *autoclave.Report) Truth {
	t := Truth{
		Device: u.n, Unit: u.n, Counter: r.Counter,
		Program: r.Program.Name, ProgramCode: r.Program.Code,
		Fault: strings.Join(r.Faults, ","), Faults: append([]string{}, r.Faults...),
		Result: r.Result.String(), ResultCode: uint16(r.Result), AlarmCode: r.AlarmCode,
		HoldS: math.Round(math.Min(r.ReportedHoldS, 65535)), TrueHoldS: round(r.TrueHoldS, 1),
		MaxSatDeviationK: round(r.MaxSatDeviationK, 2), MaxHeatingKMin: round(r.MaxHeatingKMin, 1),
		F0: round(r.F0, 1), TruthVerdict: "failed",
		StartedAt: s.at(r.StartS), EndedAt: s.at(r.EndS),
		WallEndedAt: time.Now().UTC(),
		Phases:      []TruthPhase{}, Alarms: []TruthAlarm{},
	}
	if r.TruthPassed {
		t.TruthVerdict = "passed"
	}
	if r.EquilibrationS >= 0 {
		t.EquilibrationS = ptr(r.EquilibrationS, 0)
	}
	if r.PlateauTrueMaxC > 0 {
		t.LoadPlateauMinC, t.LoadPlateauMaxC = ptr(r.LoadPlateauMinC, 2), ptr(r.LoadPlateauMaxC, 2)
		t.PlateauMinC, t.PlateauMaxC = ptr(r.PlateauTrueMinC, 2), ptr(r.PlateauTrueMaxC, 2)
		t.PlateauMinKPa, t.PlateauMaxKPa = ptr(r.PlateauPMinKPa, 1), ptr(r.PlateauPMaxKPa, 1)
		t.ReportedPlateauMinC, t.ReportedPlateauMaxC = ptr(r.ReportedPlateauMinC, 1), ptr(r.ReportedPlateauMaxC, 1)
	}
	if r.Program.Kind == autoclave.LeakTest && r.LeakP1KPa > 0 {
		t.LeakP1KPa, t.LeakP2KPa, t.LeakRateKPaMin = ptr(r.LeakP1KPa, 2), ptr(r.LeakP2KPa, 2), ptr(r.LeakRateKPaMin, 3)
		if r.LeakP2KPa == 0 {
			t.LeakP2KPa, t.LeakRateKPaMin = nil, nil
		}
	}
	for _, p := range r.Phases {
		t.Phases = append(t.Phases, TruthPhase{Name: string(p.Phase.Name()), At: s.at(r.StartS + p.AtS)})
	}
	for _, a := range r.Alarms {
		t.Alarms = append(t.Alarms, TruthAlarm{Code: a.Code, Text: a.Text, At: s.at(r.StartS + a.AtS)})
	}
	return t
}

// TruthLog keeps the truth lines in memory for a reader in the same
// process (a test) while the simulator writes them: pass it as
// Options.Truth. Safe for the simulator's writer and any reader.
type TruthLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer; the simulator writes one line per call.
func (l *TruthLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// Cycles decodes every line written so far.
func (l *TruthLog) Cycles() ([]Truth, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Truth
	sc := bufio.NewScanner(bytes.NewReader(l.buf.Bytes()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var tr Truth
		if err := json.Unmarshal(sc.Bytes(), &tr); err != nil {
			return out, fmt.Errorf("truth line %q: %w", sc.Text(), err)
		}
		out = append(out, tr)
	}
	return out, sc.Err()
}
