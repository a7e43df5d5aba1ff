package sim

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/sterigate/sterigate/sim/rtuslave"
)

// Shuffle is another register map for the same simulated autoclave: the
// values of docs/simulator.md moved to other addresses and functions,
// re-typed (floats, kelvin, °F, bar, mbar, psi, gauge pressure), with other
// byte orders and renumbered phase and state codes, all drawn from a seed.
// It stands in for a sterilizer whose vendor publishes no register list,
// so that 'sterigate learn' can be tested against maps nobody wrote a
// profile for. Every read that touches an address outside the shuffled
// tables answers exception 2 (illegal data address), as such devices do.
//
// A Shuffle is immutable after NewShuffle and safe for concurrent reads.
type Shuffle struct {
	Seed int64
	// Fields says where each value of the standard map went, in address
	// order; tests decode with it to know the truth.
	Fields []ShuffledField
	tables []shuffleTable
}

// ShuffledField is one value of the standard map in the shuffled map.
// Decoding: raw (Type, Order) × Scale + Offset gives the standard value in
// the standard unit (°C, kPa absolute, seconds, counts), and for code
// fields the device code maps back through Codes.
type ShuffledField struct {
	Name     string // name in docs/simulator.md (chamber_temp, phase, …)
	Function byte   // 3 or 4
	Address  uint16
	Type     string // u16, i16, u32, i32, f32
	Order    string // ABCD, CDAB, BADC, DCBA
	Unit     string // what the device sends, e.g. "K", "°F x10", "bar gauge"
	Scale    float64
	Offset   float64
	// Codes maps a standard code to the device's code (phase and state
	// only; nil when the codes are unchanged).
	Codes map[uint16]uint16
}

// Registers is how many registers the field spans.
func (f ShuffledField) Registers() int {
	if f.Type == "u16" || f.Type == "i16" {
		return 1
	}
	return 2
}

// shuffleTable is one contiguous run of readable registers.
type shuffleTable struct {
	function byte
	start    uint16
	slots    []shuffleSlot
}

// shuffleSlot is one register of a table: word w of field f, or padding.
type shuffleSlot struct {
	field int // index into Fields, -1 for padding
	word  int
	pad   uint16
}

// standardValue is one value of docs/simulator.md read from the image.
type standardValue struct {
	name string
	kind string // temperature, pressure, phase, state, counter, plain
	get  func(img *[RegisterCount]uint16) float64
}

func i16At(a int) func(*[RegisterCount]uint16) float64 {
	return func(img *[RegisterCount]uint16) float64 { return float64(int16(img[a])) / 10 }
}

func u16At(a int) func(*[RegisterCount]uint16) float64 {
	return func(img *[RegisterCount]uint16) float64 { return float64(img[a]) }
}

func u32At(a int) func(*[RegisterCount]uint16) float64 {
	return func(img *[RegisterCount]uint16) float64 { return float64(uint32(img[a])<<16 | uint32(img[a+1])) }
}

// standardMap lists the values of docs/simulator.md the shuffle carries,
// in three groups that stay together (measurements, status, latched last
// cycle), as device tables usually are.
var standardMap = [][]standardValue{
	{
		{"chamber_temp", "temperature", i16At(0)},
		{"jacket_temp", "temperature", i16At(1)},
		{"chamber_pressure", "pressure", func(img *[RegisterCount]uint16) float64 { return float64(img[2]) / 10 }},
	},
	{
		{"phase", "phase", u16At(3)},
		{"program", "plain", u16At(4)},
		{"cycle_counter", "counter", u32At(5)},
		{"elapsed", "plain", u16At(7)},
		{"alarm_bits", "plain", u16At(8)},
		{"alarm_code", "plain", u16At(9)},
		{"state", "state", u16At(10)},
		{"hold_remaining", "plain", u16At(11)},
	},
	{
		{"last_cycle", "counter", u32At(16)},
		{"last_result", "plain", u16At(18)},
		{"last_program", "plain", u16At(19)},
		{"last_alarm_code", "plain", u16At(20)},
		{"last_plateau_min", "temperature", i16At(21)},
		{"last_plateau_max", "temperature", i16At(22)},
		{"last_hold_seconds", "plain", u16At(23)},
	},
}

// encoding is how a kind of value is sent: type, unit and the linear map
// from the standard value (decode: raw*scale + offset = standard).
type encoding struct {
	typ, unit     string
	scale, offset float64
}

const (
	atmKPa = 101.325
	psiKPa = 6.894757
)

var temperatureEncodings = []encoding{
	{"i16", "°C x10", 0.1, 0},
	{"f32", "°C", 1, 0},
	{"f32", "K", 1, -273.15},
	{"i32", "°C x100", 0.01, 0},
	{"i16", "°F x10", 0.1 * 5 / 9, -32 * 5.0 / 9},
	{"u16", "K x10", 0.1, -273.15},
}

var pressureEncodings = []encoding{
	{"u16", "kPa x10", 0.1, 0},
	{"f32", "bar", 100, 0},
	{"f32", "bar gauge", 100, atmKPa},
	{"u16", "mbar", 0.1, 0},
	{"i16", "mbar gauge", 0.1, atmKPa},
	{"f32", "psi", psiKPa, 0},
	{"f32", "kPa", 1, 0},
}

var orders = []string{"ABCD", "CDAB", "BADC", "DCBA"}

// tableAnchors are where vendors start their tables: round decimal and
// hexadecimal addresses, 0- or 1-based.
var tableAnchors = []int{0, 1, 100, 101, 200, 256, 257, 300, 500, 512, 513, 1000, 1001, 1024, 2000, 3000, 4096, 5000}

// NewShuffle draws a register layout from seed.
func NewShuffle(seed int64) *Shuffle {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5eed5_4ff1e))
	s := &Shuffle{Seed: seed}
	temp := temperatureEncodings[rng.IntN(len(temperatureEncodings))]
	press := pressureEncodings[rng.IntN(len(pressureEncodings))]
	floatOrder := orders[rng.IntN(len(orders))]
	if rng.IntN(3) == 0 {
		floatOrder = "CDAB" // the commonest surprise of real devices
	}
	counterOrder := orders[rng.IntN(len(orders))]
	phaseCodes := renumber(rng, 13)
	stateCodes := renumber(rng, 3)

	anchors := append([]int(nil), tableAnchors...)
	rng.Shuffle(len(anchors), func(i, j int) { anchors[i], anchors[j] = anchors[j], anchors[i] })
	var used []span
	for _, group := range standardMap {
		order := rng.Perm(len(group))
		fn := byte(3 + rng.IntN(2))
		var slots []shuffleSlot
		for k, gi := range order {
			v := group[gi]
			f := ShuffledField{Name: v.name, Function: fn, Type: "u16", Order: "ABCD", Scale: 1}
			switch v.kind {
			case "temperature":
				f.Type, f.Unit, f.Scale, f.Offset = temp.typ, temp.unit, temp.scale, temp.offset
			case "pressure":
				f.Type, f.Unit, f.Scale, f.Offset = press.typ, press.unit, press.scale, press.offset
			case "phase":
				f.Codes = phaseCodes
			case "state":
				f.Codes = stateCodes
			case "counter":
				f.Type, f.Order = "u32", counterOrder
			}
			if f.Type == "f32" {
				f.Order = floatOrder
			} else if f.Type == "i32" {
				f.Order = counterOrder
			}
			if k > 0 {
				for range rng.IntN(3) { // padding: reserved registers that read constant
					slots = append(slots, shuffleSlot{field: -1, pad: []uint16{0, 0, 0x0203, 0xFFFF}[rng.IntN(4)]})
				}
			}
			idx := len(s.Fields)
			f.Address = uint16(len(slots)) // relative until placed
			s.Fields = append(s.Fields, f)
			for w := range f.Registers() {
				slots = append(slots, shuffleSlot{field: idx, word: w})
			}
		}
		// Place the table at an anchor (or straddling one), away from
		// the other tables of the same function.
		var start int
		for _, a := range anchors {
			start = a
			if a > len(slots) && rng.IntN(3) == 0 {
				start = a - rng.IntN(len(slots)/2+1) // a table that covers the anchor, not starting on it
			}
			if !overlaps(used, fn, start, len(slots)) {
				break
			}
		}
		used = append(used, span{fn, start, len(slots)})
		for i := range slots {
			if slots[i].field >= 0 && slots[i].word == 0 {
				s.Fields[slots[i].field].Address = uint16(start + i)
			}
		}
		s.tables = append(s.tables, shuffleTable{function: fn, start: uint16(start), slots: slots})
	}
	// List the fields in address order and point the slots at the new
	// positions.
	perm := make([]int, len(s.Fields))
	for i := range perm {
		perm[i] = i
	}
	sort.Slice(perm, func(i, j int) bool {
		a, b := s.Fields[perm[i]], s.Fields[perm[j]]
		if a.Function != b.Function {
			return a.Function < b.Function
		}
		return a.Address < b.Address
	})
	sorted := make([]ShuffledField, len(s.Fields))
	newIndex := make([]int, len(s.Fields))
	for i, old := range perm {
		sorted[i] = s.Fields[old]
		newIndex[old] = i
	}
	s.Fields = sorted
	for ti := range s.tables {
		for si := range s.tables[ti].slots {
			if sl := &s.tables[ti].slots[si]; sl.field >= 0 {
				sl.field = newIndex[sl.field]
			}
		}
	}
	return s
}

type span struct {
	function byte
	start, n int
}

func overlaps(used []span, fn byte, start, n int) bool {
	for _, u := range used {
		if u.function == fn && start < u.start+u.n+2 && u.start < start+n+2 {
			return true
		}
	}
	return false
}

// renumber gives n standard codes (0..n-1) distinct device codes.
func renumber(rng *rand.Rand, n int) map[uint16]uint16 {
	base := []int{0, 1, 0x10, 100}[rng.IntN(4)]
	stride := 1 + rng.IntN(3)
	codes := make([]uint16, n)
	for i := range codes {
		codes[i] = uint16(base + i*stride)
	}
	rng.Shuffle(n, func(i, j int) { codes[i], codes[j] = codes[j], codes[i] })
	m := make(map[uint16]uint16, n)
	for i, c := range codes {
		m[uint16(i)] = c
	}
	return m
}

// String lists the layout, one field per line, for logs and test failures.
func (s *Shuffle) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "shuffled register map, seed %d:\n", s.Seed)
	for _, f := range s.Fields {
		fmt.Fprintf(&b, "  %-18s function %d address %5d %s %s %s", f.Name, f.Function, f.Address, f.Type, f.Order, f.Unit)
		if f.Codes != nil {
			fmt.Fprintf(&b, " codes %v", f.Codes)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// read serves one read request from the standard image img.
func (s *Shuffle) read(img *[RegisterCount]uint16, function byte, address, quantity uint16) ([]uint16, error) {
	if function != 3 && function != 4 {
		return nil, rtuslave.ErrIllegalFunction
	}
	for _, t := range s.tables {
		if t.function != function || address < t.start || int(address)+int(quantity) > int(t.start)+len(t.slots) {
			continue
		}
		out := make([]uint16, quantity)
		var words [2]uint16
		for i := range out {
			sl := t.slots[int(address-t.start)+i]
			if sl.field < 0 {
				out[i] = sl.pad
				continue
			}
			s.encode(sl.field, img, &words)
			out[i] = words[sl.word]
		}
		return out, nil
	}
	return nil, rtuslave.ErrIllegalAddress
}

// encode writes field fi's words for the standard image img.
func (s *Shuffle) encode(fi int, img *[RegisterCount]uint16, words *[2]uint16) {
	f := &s.Fields[fi]
	v := valueOf(f.Name, img)
	if f.Codes != nil {
		if c, ok := f.Codes[uint16(v)]; ok {
			v = float64(c)
		}
	}
	raw := (v - f.Offset) / f.Scale
	var b [4]byte
	switch f.Type {
	case "u16":
		binary.BigEndian.PutUint16(b[:], uint16(clamp(math.Round(raw), 0, math.MaxUint16)))
	case "i16":
		binary.BigEndian.PutUint16(b[:], uint16(int16(clamp(math.Round(raw), math.MinInt16, math.MaxInt16))))
	case "u32":
		binary.BigEndian.PutUint32(b[:], uint32(clamp(math.Round(raw), 0, math.MaxUint32)))
	case "i32":
		binary.BigEndian.PutUint32(b[:], uint32(int32(clamp(math.Round(raw), math.MinInt32, math.MaxInt32))))
	case "f32":
		binary.BigEndian.PutUint32(b[:], math.Float32bits(float32(raw)))
	}
	n := f.Registers()
	for i := range n {
		w := binary.BigEndian.Uint16(b[2*i:])
		if f.Order == "BADC" || f.Order == "DCBA" {
			w = w<<8 | w>>8
		}
		if f.Order == "CDAB" || f.Order == "DCBA" {
			words[n-1-i] = w
		} else {
			words[i] = w
		}
	}
}

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }

// valueOf reads the standard value called name from the image.
func valueOf(name string, img *[RegisterCount]uint16) float64 {
	for _, g := range standardMap {
		for _, v := range g {
			if v.name == name {
				return v.get(img)
			}
		}
	}
	return 0
}

// Decode gives the standard value of field f from the words the shuffled
// map serves for it (the inverse of encode, for tests).
func (f ShuffledField) Decode(words []uint16) float64 {
	n := f.Registers()
	var b [4]byte
	for i := range n {
		w := words[i]
		if f.Order == "CDAB" || f.Order == "DCBA" {
			w = words[n-1-i]
		}
		if f.Order == "BADC" || f.Order == "DCBA" {
			w = w<<8 | w>>8
		}
		binary.BigEndian.PutUint16(b[2*i:], w)
	}
	var raw float64
	switch f.Type {
	case "u16":
		raw = float64(binary.BigEndian.Uint16(b[:]))
	case "i16":
		raw = float64(int16(binary.BigEndian.Uint16(b[:])))
	case "u32":
		raw = float64(binary.BigEndian.Uint32(b[:]))
	case "i32":
		raw = float64(int32(binary.BigEndian.Uint32(b[:])))
	case "f32":
		raw = float64(math.Float32frombits(binary.BigEndian.Uint32(b[:])))
	}
	v := raw*f.Scale + f.Offset
	for std, dev := range f.Codes {
		if float64(dev) == v {
			return float64(std)
		}
	}
	return v
}
