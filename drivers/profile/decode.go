package profile

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"

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
	// Channels holds the plausible values of the profile's other
	// channels, by field name; nil when the profile maps none.
	Channels map[string]float64
	// Implausible lists the measured values of this poll that are not a
	// number (a failed sensor often reads as NaN or +Inf) or lie outside
	// their role's plausible range. They are not data.
	Implausible []Implausible
	// NoSample is true when the chamber temperature or pressure is
	// implausible: TempC and PressureKPa are then 0 and the poll gives no
	// sample. The codes and counters of the reading are still good: a
	// broken probe must not hide the end of a cycle.
	NoSample bool

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
	// LastAlarmCode is the alarm the device latched as having ended the
	// last finished cycle (0: none).
	LastAlarmCode int
	HasLastAlarm  bool
	// Figures are the device's own latched figures about the last
	// finished cycle (nil when the profile maps none). Non-finite values
	// are left out.
	Figures *protocol.DeviceFigures
}

// Implausible is a measured value that is not data: not a number, or
// outside its role's plausible range.
type Implausible struct {
	Field     string
	Role      Role
	Value     float64  // after scale and offset; may be NaN or ±Inf
	Registers []uint16 // the raw words it was decoded from
	Range     Range
}

func (v Implausible) Error() string {
	if v.Range.Contains(v.Value) {
		return fmt.Sprintf("field %s (%s) reads %s, a float too close to 0 to be a measurement", v.Field, v.Role, formatNumber(v.Value))
	}
	return fmt.Sprintf("field %s (%s) reads %s, outside the plausible range %g…%g", v.Field, v.Role, formatNumber(v.Value), v.Range.Min, v.Range.Max)
}

func formatNumber(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Sprint(v) // NaN, +Inf, -Inf
	}
	return strconv.FormatFloat(v, 'g', 6, 64)
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
// short or a code or counter is not a whole number. A measured value that
// is not a number or lies outside its plausible range does not fail the
// reading: it is reported in Reading.Implausible.
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
	// measured checks one measured field against its plausible range.
	measured := func(role Role, name string) (float64, bool) {
		v := r.Values[name]
		rg := p.PlausibleRange(role)
		f, _ := p.Field(name)
		if plausible(f, raw[name], v, rg) {
			return v, true
		}
		words, _ := p.wordsOf(f, data)
		r.Implausible = append(r.Implausible, Implausible{Field: name, Role: role, Value: v, Registers: append([]uint16(nil), words...), Range: rg})
		return 0, false
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
	t, tOK := measured(RoleChamberTemperature, p.RoleField[RoleChamberTemperature])
	kpa, pOK := measured(RoleChamberPressure, p.RoleField[RoleChamberPressure])
	if tOK && pOK {
		r.TempC, r.PressureKPa = t, kpa
	} else {
		r.NoSample = true
	}
	for _, c := range p.Channels {
		if v, ok := measured(c.Role, c.Field); ok {
			if r.Channels == nil {
				r.Channels = make(map[string]float64, len(p.Channels))
			}
			r.Channels[c.Field] = v
		}
	}
	r.Figures = p.figures(r.Values)
	if c, ok, err := code(RoleProgram); err != nil {
		return Reading{}, err
	} else if ok {
		r.ProgramCode, r.HasProgram = int(c), true
	}
	if c, ok, err := code(RolePhase); err != nil {
		return Reading{}, err
	} else if ok {
		r.PhaseCode, r.HasPhase = int(c), true
		if ph, known := p.PhaseOf(r.ProgramCode, r.HasProgram, int(c)); known {
			r.Phase = ph
		}
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
	if c, ok, err := code(RoleLastAlarmCode); err != nil {
		return Reading{}, err
	} else if ok {
		r.LastAlarmCode, r.HasLastAlarm = int(c), true
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

// figures collects the device's latched figures, as reported.
func (p *Profile) figures(values map[string]float64) *protocol.DeviceFigures {
	var f *protocol.DeviceFigures
	for _, role := range figureRoles {
		name, ok := p.RoleField[role]
		if !ok {
			continue
		}
		v := values[name]
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue // JSON cannot carry it, and it is no figure
		}
		if f == nil {
			f = &protocol.DeviceFigures{}
		}
		switch role {
		case RoleLastHoldSeconds:
			f.HoldSeconds = &v
		case RoleLastPlateauMin:
			f.PlateauMinC = &v
		case RoleLastPlateauMax:
			f.PlateauMaxC = &v
		case RoleLastPlateauMinKPa:
			f.PlateauMinKPa = &v
		case RoleLastPlateauMaxKPa:
			f.PlateauMaxKPa = &v
		case RoleLastLeakRate:
			f.LeakRateKPaMin = &v
		}
	}
	return f
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
	i := p.blockOf(f)
	if i < 0 {
		return nil, &DecodeError{Field: f.Name, Msg: "no read block covers it"}
	}
	b := p.Blocks[i]
	off := int(f.Address - b.Start)
	if off+f.Span() > len(data[i]) {
		return nil, &DecodeError{Field: f.Name, Msg: fmt.Sprintf("the device returned %d registers from %d, the field needs address %d", len(data[i]), b.Start, int(f.Address)+f.Span()-1)}
	}
	return data[i][off : off+f.Span()], nil
}
