package profile

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/sterigate/sterigate/protocol"
)

// ActiveAlarm is an alarm the device signals in one reading.
type ActiveAlarm struct {
	Code int
	Text string
}

// Reading is one poll's worth of decoded values. Fields a profile does not
// map stay at their zero value with the matching Has flag false.
type Reading struct {
	// Values holds every field after scale and offset, by field name.
	Values map[string]float64

	TempC       float64
	PressureKPa float64
	// BadMeasurement is set when the temperature or pressure did not
	// decode to a finite number (a failed sensor often reads as NaN or
	// +Inf). TempC and PressureKPa are then 0 and must not be recorded,
	// but the codes and counters of the reading are still good: a broken
	// probe must not hide the end of a cycle.
	BadMeasurement *DecodeError

	Phase          protocol.PhaseName // PhaseUnknown when unmapped or absent
	PhaseCode      int
	HasPhase       bool
	ProgramCode    int
	HasProgram     bool
	Counter        uint64
	LastCycle      uint64
	HasLastCycle   bool
	LastResultCode int
	HasLastResult  bool
	LastProgram    int
	HasLastProgram bool
	Alarms         []ActiveAlarm // sorted by code, no duplicates
}

// DecodeError says which field could not be decoded and why.
type DecodeError struct {
	Field string
	Msg   string
}

func (e *DecodeError) Error() string { return fmt.Sprintf("field %s: %s", e.Field, e.Msg) }

// RawValue decodes one field from the words of its registers (for function
// 1 and 2, one word holding 0 or 1), before scale and offset. words must
// hold at least f.Span() entries.
func (f *Field) RawValue(words []uint16) (float64, error) {
	if len(words) < f.Span() {
		return 0, &DecodeError{Field: f.Name, Msg: fmt.Sprintf("needs %d registers, got %d", f.Span(), len(words))}
	}
	if f.Function == 1 || f.Function == 2 {
		if words[0] != 0 {
			return 1, nil
		}
		return 0, nil
	}
	var buf [8]byte
	b := buf[:2*f.Type.Registers()]
	n := f.Type.Registers()
	for i := 0; i < n; i++ {
		w := words[i]
		if f.Order.swapsWords() {
			w = words[n-1-i]
		}
		if f.Order.swapsBytes() {
			w = w<<8 | w>>8
		}
		binary.BigEndian.PutUint16(b[2*i:], w)
	}
	switch f.Type {
	case TypeU16:
		return float64(binary.BigEndian.Uint16(b)), nil
	case TypeI16:
		return float64(int16(binary.BigEndian.Uint16(b))), nil
	case TypeU32:
		return float64(binary.BigEndian.Uint32(b)), nil
	case TypeI32:
		return float64(int32(binary.BigEndian.Uint32(b))), nil
	case TypeF32:
		return float64(math.Float32frombits(binary.BigEndian.Uint32(b))), nil
	case TypeF64:
		return math.Float64frombits(binary.BigEndian.Uint64(b)), nil
	case TypeBit:
		return float64(binary.BigEndian.Uint16(b) >> uint(f.Bit) & 1), nil
	}
	return 0, &DecodeError{Field: f.Name, Msg: fmt.Sprintf("unknown type %q", f.Type)}
}

// Value decodes one field and applies scale and offset.
func (f *Field) Value(words []uint16) (float64, error) {
	raw, err := f.RawValue(words)
	if err != nil {
		return 0, err
	}
	return f.scale(raw), nil
}

// scale applies scale and offset. A scale like 0.1 is applied as a division
// by 10, which gives the nearest double to the decimal value (308.2, not
// 308.20000000000005), so records carry the numbers the device meant.
func (f *Field) scale(raw float64) float64 {
	if f.Scale != 0 && f.Scale < 1 {
		if inv := 1 / f.Scale; inv == math.Round(inv) {
			return raw/inv + f.Offset
		}
	}
	return raw*f.Scale + f.Offset
}

// Decode turns the words read for each of p.Blocks (data[i] answers
// p.Blocks[i]) into a Reading. It fails, naming the field, when a block is
// short or a code or counter is not a whole number. A temperature or
// pressure that is not a finite number does not fail the reading: it is
// reported in Reading.BadMeasurement.
func (p *Profile) Decode(data [][]uint16) (Reading, error) {
	if len(data) != len(p.Blocks) {
		return Reading{}, fmt.Errorf("profile %s: got %d blocks of data for %d blocks", p.Name, len(data), len(p.Blocks))
	}
	r := Reading{Values: make(map[string]float64, len(p.Fields)), Phase: protocol.PhaseUnknown}
	raw := make(map[string]float64, len(p.Fields))
	for i := range p.Fields {
		f := &p.Fields[i]
		words, err := p.wordsOf(f, data)
		if err != nil {
			return Reading{}, err
		}
		rv, err := f.RawValue(words)
		if err != nil {
			return Reading{}, err
		}
		raw[f.Name] = rv
		r.Values[f.Name] = f.scale(rv)
	}
	measurement := func(role Role) float64 {
		name := p.RoleField[role]
		v := r.Values[name]
		if math.IsNaN(v) || math.IsInf(v, 0) {
			if r.BadMeasurement == nil {
				r.BadMeasurement = &DecodeError{Field: name, Msg: fmt.Sprintf("%s reads %v, not a number (sensor fault, or wrong type or order)", role, v)}
			}
			return 0
		}
		return v
	}
	code := func(role Role) (int64, bool, error) {
		name, ok := p.RoleField[role]
		if !ok {
			return 0, false, nil
		}
		v := r.Values[name]
		if v != math.Trunc(v) || v < math.MinInt32 || v > math.MaxUint32 {
			return 0, false, &DecodeError{Field: name, Msg: fmt.Sprintf("%s reads %v, not a whole number (check scale and offset)", role, v)}
		}
		return int64(v), true, nil
	}
	r.TempC = measurement(RoleChamberTemperature)
	r.PressureKPa = measurement(RoleChamberPressure)
	if r.BadMeasurement != nil {
		r.TempC, r.PressureKPa = 0, 0
	}
	if c, ok, err := code(RolePhase); err != nil {
		return Reading{}, err
	} else if ok {
		r.PhaseCode, r.HasPhase = int(c), true
		if ph, known := p.Phases[int(c)]; known {
			r.Phase = ph
		}
	}
	if c, ok, err := code(RoleProgram); err != nil {
		return Reading{}, err
	} else if ok {
		r.ProgramCode, r.HasProgram = int(c), true
	}
	if c, _, err := code(RoleCycleCounter); err != nil {
		return Reading{}, err
	} else {
		if c < 0 {
			return Reading{}, &DecodeError{Field: p.RoleField[RoleCycleCounter], Msg: fmt.Sprintf("cycle counter reads %d; a counter cannot be negative", c)}
		}
		r.Counter = uint64(c)
	}
	if c, ok, err := code(RoleLastCycle); err != nil {
		return Reading{}, err
	} else if ok {
		if c < 0 {
			return Reading{}, &DecodeError{Field: p.RoleField[RoleLastCycle], Msg: fmt.Sprintf("last cycle reads %d; a counter cannot be negative", c)}
		}
		r.LastCycle, r.HasLastCycle = uint64(c), true
	}
	if c, ok, err := code(RoleLastResult); err != nil {
		return Reading{}, err
	} else if ok {
		r.LastResultCode, r.HasLastResult = int(c), true
	}
	if c, ok, err := code(RoleLastProgram); err != nil {
		return Reading{}, err
	} else if ok {
		r.LastProgram, r.HasLastProgram = int(c), true
	}
	active := map[int]string{}
	for _, a := range p.Alarms {
		v := raw[a.Field]
		if v < 0 {
			v += 1 << 32 // a signed field: test the two's-complement bits
		}
		if uint64(v)>>uint(a.Bit)&1 == 1 {
			active[a.Code] = a.Text
		}
	}
	if c, ok, err := code(RoleAlarmCode); err != nil {
		return Reading{}, err
	} else if ok && c != 0 {
		if _, dup := active[int(c)]; !dup {
			active[int(c)] = p.AlarmText(int(c))
		}
	}
	for c, t := range active {
		r.Alarms = append(r.Alarms, ActiveAlarm{Code: c, Text: t})
	}
	sortAlarms(r.Alarms)
	return r, nil
}

func sortAlarms(a []ActiveAlarm) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j].Code < a[j-1].Code; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

// wordsOf finds the words of field f in the block data.
func (p *Profile) wordsOf(f *Field, data [][]uint16) ([]uint16, error) {
	for i, b := range p.Blocks {
		if b.Function != f.Function || f.Address < b.Start || int(f.Address)+f.Span() > int(b.Start)+int(b.Count) {
			continue
		}
		off := int(f.Address - b.Start)
		if off+f.Span() > len(data[i]) {
			return nil, &DecodeError{Field: f.Name, Msg: fmt.Sprintf("the device returned %d registers from %d, the field needs address %d", len(data[i]), b.Start, int(f.Address)+f.Span()-1)}
		}
		return data[i][off : off+f.Span()], nil
	}
	return nil, &DecodeError{Field: f.Name, Msg: "no read block covers it"}
}
