package learn

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// The recording file is JSON lines (docs/learn.md, "The recording file"):
//
//	{"format":"sterigate-learn-recording","version":1,"device":"…","unit":1,
//	 "started_at":"…","time_scale":1,"interval_s":1,
//	 "blocks":[{"function":3,"start":0,"count":24}], "scan":{…}}
//	{"t":0,"v":[[452,1250,1013,…]]}
//	{"t":1.002,"v":[null],"e":["timeout"]}
//	{"stop":"end of cycle recognised"}
//
// The first line describes the device and the blocks read in every round;
// each further line is one round: t is device seconds since the start, v
// holds the words of each block in header order (null when that read
// failed, the reason in e), bits of functions 1 and 2 as 0 or 1. A last
// "stop" line says why the recording ended. Lines are written and flushed
// one by one, so a recording cut short by a crash loses at most its last
// line, and the reader skips a truncated last line.

// RecordingFormat and RecordingVersion identify the file format.
const (
	RecordingFormat  = "sterigate-learn-recording"
	RecordingVersion = 1
)

// Bounds on what a recording may hold, so a damaged or hostile file cannot
// make the reader allocate without limit.
const (
	maxRecordingBlocks = 4096
	maxLineBytes       = 64 << 20
)

// Block is one read request of a recording round.
type Block struct {
	Function byte   `json:"function"`
	Start    uint16 `json:"start"`
	Count    uint16 `json:"count"`
}

// End is the first address after the block.
func (b Block) End() int { return int(b.Start) + int(b.Count) }

// maxCount is the largest request a Modbus PDU allows for a function.
func maxCount(function byte) int {
	if function == 1 || function == 2 {
		return 2000
	}
	return 125
}

// Header is the first line of a recording.
type Header struct {
	Format    string    `json:"format"`
	Version   int       `json:"version"`
	Device    string    `json:"device"` // the link, e.g. "Modbus TCP 192.168.10.21:502"
	Unit      int       `json:"unit"`
	StartedAt time.Time `json:"started_at"`
	// TimeScale is device seconds per wall-clock second: 1 on a real
	// device, the simulator's --speed in a rehearsal.
	TimeScale float64 `json:"time_scale"`
	// IntervalS is the intended time between rounds, in device seconds.
	IntervalS float64      `json:"interval_s"`
	Blocks    []Block      `json:"blocks"`
	Scan      *ScanSummary `json:"scan,omitempty"`
}

// Sample is one round: every block read once.
type Sample struct {
	T      float64    // device seconds since the recording started
	Values [][]uint16 // one entry per Header.Blocks; nil when that read failed
	Errors []string   // why a read failed ("" when it did not); nil when none failed
}

// Recording is a header and its samples, in time order.
type Recording struct {
	Header  Header
	Samples []Sample
	Stop    string   // why the recording ended, when it says
	Notes   []string // what the reader had to skip
}

type sampleLine struct {
	T    *float64   `json:"t,omitempty"`
	V    [][]uint16 `json:"v,omitempty"`
	E    []*string  `json:"e,omitempty"`
	Stop string     `json:"stop,omitempty"`
}

// RecordingWriter writes a recording file line by line.
type RecordingWriter struct {
	w   *bufio.Writer
	buf bytes.Buffer
}

// NewRecordingWriter starts a recording file on w with its header.
func NewRecordingWriter(w io.Writer, h Header) (*RecordingWriter, error) {
	h.Format, h.Version = RecordingFormat, RecordingVersion
	if err := h.check(); err != nil {
		return nil, err
	}
	rw := &RecordingWriter{w: bufio.NewWriter(w)}
	return rw, rw.line(h)
}

// Sample appends one round.
func (rw *RecordingWriter) Sample(s Sample) error {
	l := sampleLine{T: &s.T, V: s.Values}
	if s.Errors != nil {
		l.E = make([]*string, len(s.Errors))
		for i := range s.Errors {
			if s.Errors[i] != "" {
				l.E[i] = &s.Errors[i]
			}
		}
	}
	return rw.line(l)
}

// Stop appends the line that says why the recording ended.
func (rw *RecordingWriter) Stop(reason string) error {
	return rw.line(sampleLine{Stop: reason})
}

func (rw *RecordingWriter) line(v any) error {
	rw.buf.Reset()
	enc := json.NewEncoder(&rw.buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	if _, err := rw.w.Write(rw.buf.Bytes()); err != nil {
		return err
	}
	return rw.w.Flush()
}

func (h *Header) check() error {
	if h.Format != RecordingFormat {
		return fmt.Errorf("format is %q, want %q (not a sterigate learn recording)", h.Format, RecordingFormat)
	}
	if h.Version != RecordingVersion {
		return fmt.Errorf("version is %d; this sterigate reads version %d", h.Version, RecordingVersion)
	}
	if !(h.TimeScale > 0) || math.IsInf(h.TimeScale, 0) {
		return fmt.Errorf("time_scale is %v, want a positive number", h.TimeScale)
	}
	if h.IntervalS < 0 || math.IsNaN(h.IntervalS) || math.IsInf(h.IntervalS, 0) {
		return fmt.Errorf("interval_s is %v, want a positive number of seconds", h.IntervalS)
	}
	if len(h.Blocks) == 0 {
		return errors.New("blocks is empty: the recording read nothing")
	}
	if len(h.Blocks) > maxRecordingBlocks {
		return fmt.Errorf("blocks has %d entries, at most %d allowed", len(h.Blocks), maxRecordingBlocks)
	}
	for i, b := range h.Blocks {
		if b.Function < 1 || b.Function > 4 {
			return fmt.Errorf("blocks[%d].function is %d, want a read function 1-4", i, b.Function)
		}
		if b.Count == 0 || int(b.Count) > maxCount(b.Function) {
			return fmt.Errorf("blocks[%d].count is %d, want 1-%d for function %d", i, b.Count, maxCount(b.Function), b.Function)
		}
		if b.End() > 65536 {
			return fmt.Errorf("blocks[%d] runs past address 65535 (start %d, count %d)", i, b.Start, b.Count)
		}
	}
	return nil
}

// ReadRecording reads a recording file. name labels errors ("FILE:LINE:
// …"). A last line cut short (the recorder was killed mid-write) is
// skipped and noted; any other bad line is an error naming the line and
// the field.
func ReadRecording(r io.Reader, name string) (*Recording, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	lineNo := 0
	next := func() ([]byte, bool, error) {
		var line []byte
		for {
			chunk, err := br.ReadSlice('\n')
			line = append(line, chunk...)
			if len(line) > maxLineBytes {
				return nil, false, fmt.Errorf("%s:%d: line longer than %d bytes", name, lineNo+1, maxLineBytes)
			}
			switch {
			case err == nil:
				lineNo++
				return bytes.TrimRight(line, "\r\n"), true, nil
			case errors.Is(err, bufio.ErrBufferFull):
				continue
			case errors.Is(err, io.EOF):
				if len(line) == 0 {
					return nil, false, io.EOF
				}
				lineNo++
				return line, false, nil // no newline: possibly cut short
			default:
				return nil, false, fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	first, _, err := next()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: empty file, not a sterigate learn recording", name)
	}
	if err != nil {
		return nil, err
	}
	rec := &Recording{}
	if err := json.Unmarshal(first, &rec.Header); err != nil {
		return nil, fmt.Errorf("%s:1: header: %v (not a sterigate learn recording?)", name, err)
	}
	if err := rec.Header.check(); err != nil {
		return nil, fmt.Errorf("%s:1: header: %w", name, err)
	}
	blocks := rec.Header.Blocks
	for {
		line, complete, err := next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if rec.Stop != "" {
			return nil, fmt.Errorf("%s:%d: a line after the stop line", name, lineNo)
		}
		var l sampleLine
		if err := json.Unmarshal(line, &l); err != nil {
			if !complete {
				rec.Notes = append(rec.Notes, fmt.Sprintf("%s:%d: last line cut short, skipped", name, lineNo))
				break
			}
			return nil, fmt.Errorf("%s:%d: %v", name, lineNo, err)
		}
		if l.Stop != "" {
			if l.T != nil || l.V != nil {
				return nil, fmt.Errorf("%s:%d: a stop line carries nothing else", name, lineNo)
			}
			rec.Stop = l.Stop
			continue
		}
		s, err := l.sample(blocks)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, lineNo, err)
		}
		if n := len(rec.Samples); n > 0 && s.T < rec.Samples[n-1].T {
			return nil, fmt.Errorf("%s:%d: t is %v, before the previous sample's %v", name, lineNo, s.T, rec.Samples[n-1].T)
		}
		rec.Samples = append(rec.Samples, s)
	}
	if len(rec.Samples) == 0 {
		return nil, fmt.Errorf("%s: the recording holds no samples", name)
	}
	return rec, nil
}

func (l *sampleLine) sample(blocks []Block) (Sample, error) {
	if l.T == nil {
		return Sample{}, errors.New("t is missing")
	}
	if math.IsNaN(*l.T) || math.IsInf(*l.T, 0) || *l.T < 0 {
		return Sample{}, fmt.Errorf("t is %v, want seconds since the start", *l.T)
	}
	if len(l.V) != len(blocks) {
		return Sample{}, fmt.Errorf("v has %d blocks, the header lists %d", len(l.V), len(blocks))
	}
	if l.E != nil && len(l.E) != len(blocks) {
		return Sample{}, fmt.Errorf("e has %d entries, the header lists %d blocks", len(l.E), len(blocks))
	}
	s := Sample{T: *l.T, Values: l.V}
	for i, v := range l.V {
		if v == nil {
			continue
		}
		b := blocks[i]
		if len(v) != int(b.Count) {
			return Sample{}, fmt.Errorf("v[%d] has %d values, block %d (function %d from %d) has %d", i, len(v), i, b.Function, b.Start, b.Count)
		}
		if b.Function <= 2 {
			for j, x := range v {
				if x > 1 {
					return Sample{}, fmt.Errorf("v[%d][%d] is %d; a coil or input is 0 or 1", i, j, x)
				}
			}
		}
	}
	if l.E != nil {
		s.Errors = make([]string, len(l.E))
		for i, e := range l.E {
			if e != nil {
				s.Errors[i] = *e
			}
		}
	}
	return s, nil
}
