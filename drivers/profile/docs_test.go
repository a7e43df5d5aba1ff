package profile

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestDocsProfilesParse keeps docs/profiles.md honest: every complete
// profile in it (a yaml block with fields: and roles:) must load.
func TestDocsProfilesParse(t *testing.T) {
	data, err := os.ReadFile("../../docs/profiles.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(data), "```yaml\n")
	n := 0
	for i, b := range blocks[1:] {
		src, _, _ := strings.Cut(b, "```")
		if !strings.Contains(src, "\nfields:") || !strings.Contains(src, "\nroles:") {
			continue
		}
		n++
		if _, err := Parse(fmt.Sprintf("docs/profiles.md block %d", i+1), []byte(src)); err != nil {
			t.Errorf("a profile in docs/profiles.md does not load:\n%v\n%s", err, src)
		}
	}
	if n < 2 {
		t.Fatalf("found %d complete profiles in docs/profiles.md, want at least 2", n)
	}
}

// TestDocsWorkedByteExamples pins the byte tables of docs/profiles.md §5.
func TestDocsWorkedByteExamples(t *testing.T) {
	for _, c := range []struct {
		typ   Type
		order Order
		words []uint16
		want  float64
	}{
		{TypeF32, OrderABCD, []uint16{0x4306, 0x8000}, 134.5},
		{TypeF32, OrderCDAB, []uint16{0x8000, 0x4306}, 134.5},
		{TypeF32, OrderBADC, []uint16{0x0643, 0x0080}, 134.5},
		{TypeF32, OrderDCBA, []uint16{0x0080, 0x0643}, 134.5},
		{TypeU32, OrderABCD, []uint16{0x0001, 0x1170}, 70000},
		{TypeU32, OrderCDAB, []uint16{0x1170, 0x0001}, 70000},
		{TypeU32, OrderBADC, []uint16{0x0100, 0x7011}, 70000},
		{TypeU32, OrderDCBA, []uint16{0x7011, 0x0100}, 70000},
		{TypeI16, OrderBADC, []uint16{0xE7FF}, -25},
		{TypeI16, OrderDCBA, []uint16{0xE7FF}, -25},
		{TypeBit, OrderABCD, []uint16{0x0204}, 1},
	} {
		f := Field{Name: "x", Function: 3, Type: c.typ, Order: c.order, Scale: 1, Bit: 9}
		if got, err := f.RawValue(c.words); err != nil || got != c.want {
			t.Errorf("%s %s % x = %v, %v; want %v", c.typ, c.order, c.words, got, err, c.want)
		}
	}
}
