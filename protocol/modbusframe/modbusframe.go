// Package modbusframe is the part of the Modbus wire format that both ends
// of a link share: the CRC-16 that closes every RTU frame, the exception
// codes a server answers with and their names, the read function codes, and
// t3.5, the silence that separates RTU frames on a serial line.
//
// The gateway's drivers (the master side, drivers/modbus and drivers/rtu)
// and the simulator (the slave side, sim/rtuslave) both import it, so the
// two sides of a test cannot drift apart: one CRC, one table of exception
// names. It holds no state and does no I/O.
package modbusframe

import (
	"encoding/binary"
	"time"
)

// Read function codes: the only ones sterigate's drivers ever send.
const (
	FuncReadCoils            byte = 1
	FuncReadDiscreteInputs   byte = 2
	FuncReadHoldingRegisters byte = 3
	FuncReadInputRegisters   byte = 4
)

// IsReadFunction reports whether fc is one of the four read function codes.
func IsReadFunction(fc byte) bool { return fc >= FuncReadCoils && fc <= FuncReadInputRegisters }

// ExceptionBit marks a reply as an exception: the server echoes the
// request's function code with the high bit set, then one exception code.
const ExceptionBit = 0x80

// Exception codes (Modbus application protocol v1.1b3 §7).
const (
	ExceptionIllegalFunction     byte = 1
	ExceptionIllegalDataAddress  byte = 2
	ExceptionIllegalDataValue    byte = 3
	ExceptionServerDeviceFailure byte = 4
	ExceptionAcknowledge         byte = 5
	ExceptionServerDeviceBusy    byte = 6
	ExceptionMemoryParityError   byte = 8
	// ExceptionGatewayPathUnavailable: a Modbus TCP gateway has no path to
	// the target unit (misconfigured or overloaded gateway).
	ExceptionGatewayPathUnavailable byte = 10
	// ExceptionGatewayTargetFailedToRespond: a Modbus TCP gateway asked the
	// unit on its serial line and got no answer — the unit is powered off
	// or disconnected.
	ExceptionGatewayTargetFailedToRespond byte = 11
)

// ExceptionName is the specification's name of an exception code.
func ExceptionName(code byte) string {
	switch code {
	case ExceptionIllegalFunction:
		return "illegal function"
	case ExceptionIllegalDataAddress:
		return "illegal data address"
	case ExceptionIllegalDataValue:
		return "illegal data value"
	case ExceptionServerDeviceFailure:
		return "server device failure"
	case ExceptionAcknowledge:
		return "acknowledge"
	case ExceptionServerDeviceBusy:
		return "server device busy"
	case ExceptionMemoryParityError:
		return "memory parity error"
	case ExceptionGatewayPathUnavailable:
		return "gateway path unavailable"
	case ExceptionGatewayTargetFailedToRespond:
		return "gateway target device failed to respond"
	}
	return "unknown exception code"
}

// TargetAbsent reports whether an exception code means that the unit
// behind a gateway is not there (10, 11): for the gateway's purposes the
// unit did not answer, as if the request had timed out.
func TargetAbsent(code byte) bool {
	return code == ExceptionGatewayPathUnavailable || code == ExceptionGatewayTargetFailedToRespond
}

// CRC16 is CRC-16/MODBUS (polynomial 0xA001 reflected, initial value
// 0xFFFF). Table-driven: the slave recomputes it at every byte offset while
// hunting for a frame in line noise.
func CRC16(data []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, b := range data {
		crc = crc>>8 ^ crcTable[byte(crc)^b]
	}
	return crc
}

// crcTable is computed once and never written afterwards.
var crcTable = func() (table [256]uint16) {
	for i := range table {
		crc := uint16(i)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xA001
			} else {
				crc >>= 1
			}
		}
		table[i] = crc
	}
	return table
}()

// AppendCRC appends the CRC of frame, low byte first as on the wire.
func AppendCRC(frame []byte) []byte {
	return binary.LittleEndian.AppendUint16(frame, CRC16(frame))
}

// MinRTUFrame is the shortest RTU frame that can carry a CRC: unit,
// function, CRC.
const MinRTUFrame = 4

// MaxRTUFrame is the longest RTU frame (Modbus over serial line v1.02
// §2.5.1): address, function, 252 data bytes, CRC.
const MaxRTUFrame = 256

// CRCValid reports whether the last two bytes of frame are the CRC of the
// rest.
func CRCValid(frame []byte) bool {
	if len(frame) < MinRTUFrame {
		return false
	}
	n := len(frame) - 2
	return CRC16(frame[:n]) == binary.LittleEndian.Uint16(frame[n:])
}

// FrameCRC returns the CRC a frame carries (its last two bytes) and the CRC
// of the rest, for an error message; frame must be at least 2 bytes long.
func FrameCRC(frame []byte) (carried, computed uint16) {
	n := len(frame) - 2
	return binary.LittleEndian.Uint16(frame[n:]), CRC16(frame[:n])
}

// CharacterTime is the time one RTU character of bitsPerChar bits (start,
// 8 data, parity or second stop, stop: 11 for 8E1 and 8N2, 10 for 8N1)
// takes on the wire at baud.
func CharacterTime(baud, bitsPerChar int) time.Duration {
	if baud <= 0 {
		return 0
	}
	return time.Duration(int64(bitsPerChar) * int64(time.Second) / int64(baud))
}

// FrameSilence is t3.5, the silence that ends an RTU frame: 3.5 character
// times at baud, fixed at 1.75 ms above 19200 baud (Modbus over serial line
// v1.02 §2.5.1.1).
func FrameSilence(baud, bitsPerChar int) time.Duration {
	if baud <= 0 {
		return 0
	}
	if baud > 19200 {
		return 1750 * time.Microsecond
	}
	return time.Duration(3.5 * float64(bitsPerChar) * float64(time.Second) / float64(baud))
}
