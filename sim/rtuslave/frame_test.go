package rtuslave

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/sterigate/sterigate/protocol/modbusframe"
)

func framesString(frames [][]byte) string {
	return fmt.Sprintf("% x", frames)
}

func TestDecoderByteByByte(t *testing.T) {
	want := [][]byte{
		readRequest(1, 3, 0, 24),
		modbusframe.AppendCRC([]byte{2, 16, 0, 1, 0, 2, 4, 0xAA, 0xBB, 0xCC, 0xDD}),
		modbusframe.AppendCRC([]byte{3, 6, 0, 1, 0x0D, 0x0A}),
	}
	var stream []byte
	for _, f := range want {
		stream = append(stream, f...)
	}
	var d decoder
	var got [][]byte
	for _, b := range stream {
		got = d.feed([]byte{b}, got)
	}
	if framesString(got) != framesString(want) || d.pending() {
		t.Fatalf("got %s (pending %v), want %s", framesString(got), d.pending(), framesString(want))
	}
}

func TestDecoderSilenceDiscardsPartialFrame(t *testing.T) {
	var d decoder
	partial := readRequest(1, 3, 0, 4)[:5]
	if got := d.feed(partial, nil); len(got) != 0 || !d.pending() {
		t.Fatalf("partial frame: got %s, pending %v", framesString(got), d.pending())
	}
	if got := d.silence(nil); len(got) != 0 || d.pending() {
		t.Fatalf("silence after a partial frame: got %s, pending %v", framesString(got), d.pending())
	}
	good := readRequest(1, 3, 0, 4)
	if got := d.feed(good, nil); framesString(got) != framesString([][]byte{good}) {
		t.Fatalf("frame after silence: got %s", framesString(got))
	}
}

func TestDecoderUnknownFunctionEndsAtSilence(t *testing.T) {
	var d decoder
	frame := modbusframe.AppendCRC([]byte{1, 0x2B, 0x0E, 0x01, 0x00}) // read device identification
	if got := d.feed(frame, nil); len(got) != 0 {
		t.Fatalf("unknown function framed before silence: %s", framesString(got))
	}
	if got := d.silence(nil); framesString(got) != framesString([][]byte{frame}) {
		t.Fatalf("at silence: got %s, want the whole frame", framesString(got))
	}
}

func TestDecoderOverrunOfUnknownFunction(t *testing.T) {
	var d decoder
	noise := bytes.Repeat([]byte{0x01, 0x64}, modbusframe.MaxRTUFrame) // unit 1, unknown function 0x64, forever
	good := readRequest(1, 4, 2, 3)
	got := d.feed(append(noise, good...), nil)
	got = d.silence(got)
	if framesString(got) != framesString([][]byte{good}) {
		t.Fatalf("got %s, want only the good frame", framesString(got))
	}
}

// FuzzFrame feeds arbitrary bytes, split at an arbitrary point, through the
// decoder and the reply builder. It must never panic, never emit a frame with
// a bad CRC, never emit more bytes than it was given, answer only with
// well-formed replies, and still frame a good request after a silence.
func FuzzFrame(f *testing.F) {
	f.Add(readRequest(1, 3, 0, 24), 3)
	f.Add(append([]byte{0xFF, 0x00, 0x13}, readRequest(7, 4, 5, 2)...), 1)
	f.Add(modbusframe.AppendCRC([]byte{1, 16, 0, 0, 0, 2, 4, 0, 1, 0, 2}), 7)
	f.Add(modbusframe.AppendCRC([]byte{1, 15, 0, 0, 0, 9, 2, 0xFF, 0x01}), 0)
	f.Add(modbusframe.AppendCRC([]byte{1, 0x11}), 2)
	f.Add([]byte{1, 16, 0, 0, 0, 100, 200, 1, 2, 3}, 5)
	f.Add(modbusframe.AppendCRC([]byte{0, 6, 0, 1, 0, 42}), 4)
	f.Add(readRequest(1, 3, 0xFFFF, 125), 8)
	f.Fuzz(func(t *testing.T, stream []byte, split int) {
		if len(stream) > 4*modbusframe.MaxRTUFrame { // longer inputs only repeat the same paths, slowly
			stream = stream[:4*modbusframe.MaxRTUFrame]
		}
		if split < 0 || split > len(stream) {
			split = len(stream) / 2
		}
		var d decoder
		frames := d.feed(stream[:split], nil)
		frames = d.feed(stream[split:], frames)
		frames = d.silence(frames)
		total := 0
		bank := newFakeBank(1, 2, 7)
		s := &slave{regs: bank, log: discardLogger()}
		for _, frame := range frames {
			total += len(frame)
			if len(frame) < modbusframe.MinRTUFrame || len(frame) > modbusframe.MaxRTUFrame || !modbusframe.CRCValid(frame) {
				t.Fatalf("decoder emitted an invalid frame % x from % x", frame, stream)
			}
			reply := s.reply(parseRequest(frame), frame)
			if reply == nil {
				continue
			}
			if frame[0] == 0 {
				t.Fatalf("broadcast frame % x answered with % x", frame, reply)
			}
			if reply[0] != frame[0] || reply[1]&0x7F != frame[1] || len(reply) < 3 || len(reply) > modbusframe.MaxRTUFrame-2 {
				t.Fatalf("frame % x answered with malformed % x", frame, reply)
			}
			if reply[1]&0x80 == 0 && int(reply[2]) != len(reply)-3 {
				t.Fatalf("frame % x answered with wrong byte count % x", frame, reply)
			}
		}
		if total > len(stream) {
			t.Fatalf("emitted %d bytes of frames from %d input bytes", total, len(stream))
		}
		good := readRequest(2, 3, 0, 1)
		if got := d.feed(good, nil); framesString(got) != framesString([][]byte{good}) {
			t.Fatalf("after silence, a good frame gave %s", framesString(got))
		}
	})
}
