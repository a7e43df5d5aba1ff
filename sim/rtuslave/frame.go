package rtuslave

import "github.com/sterigate/sterigate/protocol/modbusframe"

// maxWriteByteCount is the largest byte count of functions 15 and 16 (123
// registers or 1968 coils); a larger count cannot be a real frame.
const maxWriteByteCount = 246

// scanStatus is what the decoder can say about the bytes at the start of its buffer.
type scanStatus int

const (
	scanNeedMore      scanStatus = iota // a known function whose frame is not complete yet
	scanFrame                           // a complete frame with a valid CRC
	scanBad                             // cannot be a frame here: bad CRC or impossible byte count
	scanUnknownLength                   // function code whose length we cannot know; ends at silence
)

// scan looks at the start of buf. For scanFrame, n is the frame's length.
// The request length follows from the function code (and, for 15 and 16,
// from the byte count in the header); other function codes have no length
// the slave can know, so their frame ends at the next silence.
func scan(buf []byte) (n int, status scanStatus) {
	if len(buf) < 2 {
		return 0, scanNeedMore
	}
	switch buf[1] {
	case 1, 2, 3, 4, 5, 6: // unit, fc, address(2), quantity-or-value(2), CRC(2)
		n = 8
	case 15, 16: // unit, fc, address(2), quantity(2), byte count, data, CRC(2)
		if len(buf) < 7 {
			return 0, scanNeedMore
		}
		byteCount := int(buf[6])
		if byteCount == 0 || byteCount > maxWriteByteCount {
			return 0, scanBad
		}
		n = 9 + byteCount
	default:
		return 0, scanUnknownLength
	}
	if len(buf) < n {
		return 0, scanNeedMore
	}
	if !modbusframe.CRCValid(buf[:n]) {
		return 0, scanBad
	}
	return n, scanFrame
}

// decoder cuts a byte stream into CRC-valid request frames.
//
// A real slave discards a frame with a bad CRC and waits for the line to go
// quiet for t3.5 before it looks for the next one. A pseudo-terminal has no
// timing, so garbage and the next request may arrive glued together; the
// decoder therefore also hunts: after a bad frame it drops one byte and tries
// again from the next. Only CRC-valid frames ever leave the decoder, so
// hunting cannot make the slave answer garbage (a false match needs a
// plausible header and a matching 16-bit CRC).
type decoder struct {
	buf []byte
}

// feed appends received bytes and returns the complete frames found. The
// returned slices are copies owned by the caller.
func (d *decoder) feed(data []byte, frames [][]byte) [][]byte {
	d.buf = append(d.buf, data...)
	for len(d.buf) > 0 {
		n, status := scan(d.buf)
		switch status {
		case scanFrame:
			frames = append(frames, d.take(n))
			continue
		case scanBad:
			d.drop(1)
			continue
		case scanUnknownLength:
			if len(d.buf) > modbusframe.MaxRTUFrame { // nothing legal is this long: overrun
				d.drop(1)
				continue
			}
		}
		break // need more bytes or silence
	}
	return frames
}

// silence is called when the line has been quiet for t3.5: whatever is
// pending is either one whole frame of a function whose length the decoder
// cannot derive, or it contains garbage; frames found behind the garbage are
// still returned. Afterwards the buffer is empty.
func (d *decoder) silence(frames [][]byte) [][]byte {
	for len(d.buf) > 0 {
		n, status := scan(d.buf)
		switch {
		case status == scanFrame:
			frames = append(frames, d.take(n))
		case status == scanUnknownLength && len(d.buf) <= modbusframe.MaxRTUFrame && modbusframe.CRCValid(d.buf):
			frames = append(frames, d.take(len(d.buf)))
		default:
			d.drop(1)
		}
	}
	d.buf = d.buf[:0]
	return frames
}

// pending reports whether a partial frame is waiting for more bytes.
func (d *decoder) pending() bool { return len(d.buf) > 0 }

func (d *decoder) take(n int) []byte {
	frame := append([]byte(nil), d.buf[:n]...)
	d.buf = d.buf[n:]
	return frame
}

func (d *decoder) drop(n int) { d.buf = d.buf[n:] }
