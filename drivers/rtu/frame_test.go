package rtu

import (
	"errors"
	"strings"
	"testing"

	"github.com/sterigate/sterigate/drivers/modbus"
	"github.com/sterigate/sterigate/protocol/modbusframe"
)

func TestNewRequestRefusesEveryNonReadFunction(t *testing.T) {
	for fc := 0; fc <= 255; fc++ {
		_, err := NewRequest(1, byte(fc), 0, 1)
		isRead := fc >= 1 && fc <= 4
		if isRead && err != nil {
			t.Errorf("function %d refused: %v", fc, err)
		}
		if !isRead {
			if err == nil {
				t.Errorf("function %d accepted; only 1..4 may be sent", fc)
			} else if !strings.Contains(err.Error(), "refused") {
				t.Errorf("function %d: error %q does not say it was refused", fc, err)
			}
		}
	}
}

func TestNewRequestLimits(t *testing.T) {
	bad := []struct {
		unit, fc  byte
		addr, qty uint16
		mention   string
	}{
		{0, 3, 0, 1, "unit 0"},
		{248, 3, 0, 1, "unit 248"},
		{1, 3, 0, 0, "quantity 0"},
		{1, 3, 0, 126, "quantity 126"},
		{1, 1, 0, 2001, "quantity 2001"},
		{1, 4, 65535, 2, "address 65535"},
	}
	for _, c := range bad {
		_, err := NewRequest(c.unit, c.fc, c.addr, c.qty)
		if err == nil || !strings.Contains(err.Error(), c.mention) {
			t.Errorf("NewRequest(%d,%d,%d,%d) = %v, want an error naming %q", c.unit, c.fc, c.addr, c.qty, err, c.mention)
		}
	}
	if _, err := NewRequest(247, 1, 0, 2000); err != nil {
		t.Errorf("2000 coils of unit 247: %v", err)
	}
	if _, err := NewRequest(1, 3, 65535, 1); err != nil {
		t.Errorf("last register: %v", err)
	}
}

func TestParseReply(t *testing.T) {
	req, _ := NewRequest(7, 3, 10, 2)
	if n := req.ReplyLength(); n != 9 {
		t.Fatalf("ReplyLength = %d, want 9", n)
	}
	good := modbusframe.AppendCRC([]byte{7, 3, 4, 0x01, 0x02, 0xFF, 0xFE})
	vals, err := req.ParseReply(good)
	if err != nil || len(vals) != 2 || vals[0] != 0x0102 || vals[1] != 0xFFFE {
		t.Fatalf("ParseReply(good) = %v, %v", vals, err)
	}

	exc := modbusframe.AppendCRC([]byte{7, 0x83, 2})
	_, err = req.ParseReply(exc)
	var ex *modbus.ExceptionError
	if !errors.As(err, &ex) || ex.Code != 2 || ex.Unit != 7 || ex.Function != 3 {
		t.Fatalf("exception reply: %v", err)
	}

	corrupt := append([]byte(nil), good...)
	corrupt[4] ^= 0x10
	_, err = req.ParseReply(corrupt)
	var ce *modbus.CRCError
	if !errors.As(err, &ce) {
		t.Fatalf("corrupted reply: %v, want *modbus.CRCError", err)
	}

	for name, f := range map[string][]byte{
		"other unit":       modbusframe.AppendCRC([]byte{8, 3, 4, 1, 2, 3, 4}),
		"other function":   modbusframe.AppendCRC([]byte{7, 4, 4, 1, 2, 3, 4}),
		"wrong byte count": modbusframe.AppendCRC([]byte{7, 3, 2, 1, 2}),
		"truncated":        good[:6],
	} {
		var fe *modbus.FrameError
		if _, err := req.ParseReply(f); !errors.As(err, &fe) {
			t.Errorf("%s: %v, want *modbus.FrameError", name, err)
		}
	}

	coils, _ := NewRequest(1, 1, 0, 10)
	vals, err = coils.ParseReply(modbusframe.AppendCRC([]byte{1, 1, 2, 0b1000_0101, 0b10}))
	want := []uint16{1, 0, 1, 0, 0, 0, 0, 1, 0, 1}
	if err != nil || len(vals) != len(want) {
		t.Fatalf("coils: %v %v", vals, err)
	}
	for i := range want {
		if vals[i] != want[i] {
			t.Fatalf("coils = %v, want %v", vals, want)
		}
	}
}

func TestFindReplyAfterGarbage(t *testing.T) {
	req, _ := NewRequest(2, 4, 0, 1)
	reply := modbusframe.AppendCRC([]byte{2, 4, 2, 0x12, 0x34})
	buf := append([]byte{0x00, 0x02, 0xFF, 0x02, 0x04}, reply...)
	off, n := req.findReply(buf)
	if off != 5 || n != len(reply) {
		t.Fatalf("findReply = %d,%d, want 5,%d", off, n, len(reply))
	}
	if off, _ := req.findReply(buf[:len(buf)-1]); off != -1 {
		t.Fatalf("findReply found a reply in a truncated buffer at %d", off)
	}
}

// FuzzParseReply feeds arbitrary bytes as a reply: the parser must never
// panic, and whatever it accepts must be the right length with a valid CRC.
func FuzzParseReply(f *testing.F) {
	f.Add(byte(3), uint16(2), modbusframe.AppendCRC([]byte{7, 3, 4, 1, 2, 3, 4}))
	f.Add(byte(3), uint16(2), modbusframe.AppendCRC([]byte{7, 0x83, 2}))
	f.Add(byte(1), uint16(9), modbusframe.AppendCRC([]byte{7, 1, 2, 0xff, 1}))
	f.Add(byte(4), uint16(1), []byte{7})
	f.Add(byte(2), uint16(3), []byte{})
	f.Fuzz(func(t *testing.T, fc byte, qty uint16, frame []byte) {
		req, err := NewRequest(7, fc, 0, qty)
		if err != nil {
			return
		}
		vals, err := req.ParseReply(frame)
		if err == nil {
			if len(frame) != req.ReplyLength() || !modbusframe.CRCValid(frame) || len(vals) != int(qty) {
				t.Fatalf("accepted % x for %+v", frame, req)
			}
		}
		off, n := req.findReply(frame)
		if off >= 0 {
			if _, err := req.ParseReply(frame[off : off+n]); err != nil {
				var ex *modbus.ExceptionError
				if !errors.As(err, &ex) {
					t.Fatalf("findReply picked an invalid frame: %v", err)
				}
			}
		}
	})
}

func TestErrorsAreClassifiedByTheOneClassification(t *testing.T) {
	req, _ := NewRequest(1, 3, 0, 1)
	cases := []struct {
		frame []byte
		kind  modbus.ErrorKind
		code  byte
	}{
		{modbusframe.AppendCRC([]byte{1, 0x83, 2}), modbus.KindException, 2},
		{modbusframe.AppendCRC([]byte{1, 0x83, 11}), modbus.KindException, 11},
		{[]byte{1, 3, 2, 0, 1, 0, 0}, modbus.KindCRC, 0},
		{modbusframe.AppendCRC([]byte{2, 3, 2, 0, 1}), modbus.KindTransport, 0},
	}
	for _, c := range cases {
		_, err := req.ParseReply(c.frame)
		if kind, code := modbus.Classify(err); kind != c.kind || code != c.code {
			t.Errorf("% x: %v classified %v %d, want %v %d", c.frame, err, kind, code, c.kind, c.code)
		}
	}
	if _, err := req.atDeadline(nil); !modbus.IsUnreachable(err) {
		t.Errorf("silence: %v", err)
	}
	if kind, _ := modbus.Classify(mustErr(req.atDeadline(nil))); kind != modbus.KindTimeout {
		t.Errorf("silence is classified %v", kind)
	}
	// A reply with another function code is reported as such, not as an
	// exception whose code is its first data byte.
	_, err := req.atDeadline([]byte{1, 0x30, 0x30, 0x11, 0x22})
	if err == nil || err.Error() != "reply has function code 48, expected 3" {
		t.Errorf("wrong function code: %v", err)
	}
	if _, err := NewRequest(1, 16, 0, 1); !errors.Is(err, modbus.ErrWriteRefused) {
		t.Fatalf("function 16: %v, want modbus.ErrWriteRefused", err)
	}
}

func mustErr(_ []uint16, err error) error { return err }
