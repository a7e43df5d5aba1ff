package modbusframe

import (
	"bytes"
	"testing"
	"time"
)

// The bitwise definition of CRC-16/MODBUS, to check the table against.
func bitwiseCRC(data []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, b := range data {
		crc ^= uint16(b)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xA001
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}

func TestCRC16KnownVectors(t *testing.T) {
	// "123456789" is the standard check string; CRC-16/MODBUS gives 0x4B37.
	if got := CRC16([]byte("123456789")); got != 0x4B37 {
		t.Fatalf("CRC16(123456789) = %04x, want 4b37", got)
	}
	// Captures from the Modbus over serial line guide and countless sniffers.
	for _, c := range []struct{ body, want []byte }{
		{[]byte{0x01, 0x03, 0x00, 0x00, 0x00, 0x02}, []byte{0xC4, 0x0B}},
		{[]byte{0x01, 0x03, 0x00, 0x00, 0x00, 0x0A}, []byte{0xC5, 0xCD}},
	} {
		got := AppendCRC(append([]byte(nil), c.body...))
		if want := append(append([]byte(nil), c.body...), c.want...); !bytes.Equal(got, want) {
			t.Fatalf("frame = % x, want % x", got, want)
		}
		if !CRCValid(got) {
			t.Fatalf("CRCValid rejects % x", got)
		}
		got[3] ^= 1
		if CRCValid(got) {
			t.Fatalf("CRCValid accepts the corrupted % x", got)
		}
	}
	if CRCValid([]byte{1, 2, 3}) {
		t.Fatal("a 3-byte frame cannot carry a CRC")
	}
}

func FuzzCRC16MatchesTheBitwiseDefinition(f *testing.F) {
	f.Add([]byte("123456789"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		if got, want := CRC16(data), bitwiseCRC(data); got != want {
			t.Fatalf("CRC16(% x) = %04x, want %04x", data, got, want)
		}
	})
}

func TestExceptionNames(t *testing.T) {
	if ExceptionName(11) != "gateway target device failed to respond" || ExceptionName(2) != "illegal data address" || ExceptionName(48) != "unknown exception code" {
		t.Fatal("exception names")
	}
	for code := 0; code < 256; code++ {
		if TargetAbsent(byte(code)) != (code == 10 || code == 11) {
			t.Errorf("TargetAbsent(%d)", code)
		}
	}
}

func TestFrameSilence(t *testing.T) {
	if d := FrameSilence(9600, 11); d < 4000*time.Microsecond || d > 4020*time.Microsecond {
		t.Fatalf("t3.5 at 9600 8E1 = %s, want 4.01ms", d)
	}
	if d := FrameSilence(19200, 11); d < 2000*time.Microsecond || d > 2010*time.Microsecond {
		t.Fatalf("t3.5 at 19200 8E1 = %s, want 2.005ms", d)
	}
	if d := FrameSilence(115200, 11); d != 1750*time.Microsecond {
		t.Fatalf("t3.5 at 115200 = %s, want the fixed 1.75ms", d)
	}
	if d := CharacterTime(19200, 11); d != 572916*time.Nanosecond {
		t.Fatalf("character time at 19200 8E1 = %s", d)
	}
}
