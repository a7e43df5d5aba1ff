package modbus

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sterigate/sterigate/protocol/modbusframe"
)

// FuzzTCPReply feeds the Modbus TCP transport arbitrary replies: whatever a
// device or a TCP-to-RTU gateway sends back, a read returns exactly the
// registers asked for, or an error of one of the link's kinds (an
// exception only for a well-formed exception reply), and the connection
// is dropped after anything that is not a reply. It never panics or hangs.
// The reply's transaction id is set to the request's, so the fuzzer gets
// past that check into the rest of the frame.
func FuzzTCPReply(f *testing.F) {
	reply := func(unit, fn byte, pdu ...byte) []byte {
		b := []byte{0, 0, 0, 0, 0, 0, unit, fn}
		binary.BigEndian.PutUint16(b[4:], uint16(2+len(pdu)))
		return append(b, pdu...)
	}
	f.Add(byte(3), uint16(2), reply(1, 3, 4, 0, 1, 0, 2))
	f.Add(byte(4), uint16(1), reply(1, 4, 2, 0xff, 0xfe))
	f.Add(byte(1), uint16(9), reply(1, 1, 2, 0xa5, 0x01))
	f.Add(byte(3), uint16(2), reply(1, 0x83, 2))          // exception 2
	f.Add(byte(3), uint16(2), reply(1, 0x83, 11))         // gateway target failed to respond
	f.Add(byte(3), uint16(2), reply(1, 3, 2, 0, 1))       // too few registers
	f.Add(byte(3), uint16(2), reply(2, 3, 4, 0, 1, 0, 2)) // another unit
	f.Add(byte(3), uint16(2), reply(1, 4, 4, 0, 1, 0, 2)) // another function
	f.Add(byte(3), uint16(2), append(reply(1, 3, 4, 0, 1, 0, 2), 0xde, 0xad))
	f.Add(byte(3), uint16(2), []byte{0, 0, 0, 0, 0xff, 0xff, 1, 3})
	f.Add(byte(3), uint16(2), []byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, function byte, quantity uint16, raw []byte) {
		fn := []byte{modbusframe.FuncReadCoils, modbusframe.FuncReadDiscreteInputs, modbusframe.FuncReadHoldingRegisters, modbusframe.FuncReadInputRegisters}[function%4]
		q := quantity%125 + 1
		client, server := net.Pipe()
		tr, err := NewTCPTransport(TCPConfig{Address: "fuzz:502", Timeout: 200 * time.Millisecond,
			Dial: func(context.Context, string, string) (net.Conn, error) { return client, nil }})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			defer server.Close()
			server.SetDeadline(time.Now().Add(time.Second))
			req := make([]byte, 260)
			n, err := server.Read(req)
			if err != nil || n < 2 {
				return
			}
			answer := append([]byte(nil), raw...)
			if len(answer) >= 2 {
				copy(answer, req[:2])
			}
			server.Write(answer)
		})
		ctx := context.Background()
		if _, err := tr.Open(ctx); err != nil {
			t.Fatal(err)
		}
		words, err := tr.ReadRegisters(ctx, 1, fn, 0, q)
		wg.Wait()
		switch kind, _ := Classify(err); {
		case err == nil:
			if len(words) != int(q) {
				t.Fatalf("%d words for %d registers", len(words), q)
			}
			if fn == modbusframe.FuncReadCoils || fn == modbusframe.FuncReadDiscreteInputs {
				for _, w := range words {
					if w > 1 {
						t.Fatalf("a bit read as %d", w)
					}
				}
			}
		case kind == KindException:
			if len(raw) < 9 || raw[7] != fn|modbusframe.ExceptionBit {
				t.Fatalf("exception %v from a reply that is not an exception: % x", err, raw)
			}
			if !tr.IsOpen() {
				t.Fatal("the connection was dropped after an exception: the device answered")
			}
		case kind == KindTimeout || kind == KindTransport:
			var le *LinkError
			var fe *FrameError
			var te *TimeoutError
			if !errors.As(err, &le) && !errors.As(err, &fe) && !errors.As(err, &te) {
				t.Fatalf("error %T %v is none of the link's errors", err, err)
			}
			if tr.IsOpen() {
				t.Fatalf("the connection is kept after %v", err)
			}
		default:
			t.Fatalf("error of kind %s from the transport: %v", kind, err)
		}
		tr.Close()
	})
}
