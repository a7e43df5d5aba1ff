package codepage

import "testing"

func TestDegreeSignAndUmlauts(t *testing.T) {
	for _, c := range []struct {
		cp   string
		b    byte
		want rune
	}{
		{"cp850", 0xF8, '°'}, {"cp437", 0xF8, '°'}, {"cp850", 0x81, 'ü'}, {"cp437", 0x94, 'ö'}, {"cp850", 'A', 'A'},
	} {
		if got := Decode(c.cp, c.b); got != c.want {
			t.Errorf("Decode(%s, %#x) = %q, want %q", c.cp, c.b, got, c.want)
		}
	}
	for _, cp := range []string{"cp437", "cp850"} {
		for b := 0; b < 256; b++ {
			r := Decode(cp, byte(b))
			if back, ok := Encode(cp, r); !ok || back != byte(b) {
				t.Errorf("%s: byte %#x → %q → %#x, %v", cp, b, r, back, ok)
			}
		}
	}
	if _, ok := Encode("cp437", '€'); ok {
		t.Error("cp437 has no euro sign")
	}
	if Decode("latin9", 0xA4) != '\uFFFD' || Known("latin9") {
		t.Error("unknown code page decoded")
	}
}
