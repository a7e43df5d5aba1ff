package printer

// Limits that keep a stream of garbage from growing memory without bound.
const (
	// maxLineBytes ends a line that has no line end after this many bytes.
	maxLineBytes = 4096
	// maxReportBytes cuts a report that has no end marker after this many
	// bytes (a real report is a few KiB).
	maxReportBytes = 1 << 20
	// maxSetupLine is the longest line without text that may belong to the
	// next report: blank lines, form feeds and printer set-up (ESC @,
	// ESC ! n) are a few bytes; a longer one is noise (a bit image).
	maxSetupLine = 64
	// maxPending bounds the run of such lines kept for the next report.
	maxPending = 1024
)

// Report is one printout cut from the stream.
type Report struct {
	// Raw is the exact bytes of the report: from the first byte the device
	// printed for it (the blank lines, form feeds and printer set-up
	// sequences on the lines right before its start line, see
	// docs/printer.md) to the last line end and form feed after its end
	// line.
	Raw []byte
	// Offset is the position of Raw's first byte in the stream fed to the
	// Splitter since it was made.
	Offset int64
	// Ended says the end marker was seen; false for a report cut by
	// silence, a closed port, a new start marker or the size limit.
	Ended bool
	// AfterEnd says the line just before the start line matched the end
	// marker. In stream mode it means the start of the sterilize run was
	// seen, so the record covers the whole run.
	AfterEnd bool
}

// SplitStats counts what the Splitter has seen. Every byte fed is in
// exactly one of ReportBytes, GarbageBytes and IdleBytes once Cut has
// flushed what was pending.
type SplitStats struct {
	Reports      int64 // reports emitted, ended or not
	Cut          int64 // reports emitted without their end marker
	ReportBytes  int64 // bytes in emitted reports
	GarbageBytes int64 // bytes outside any report: noise, unknown lines
	GarbageLines int64 // lines with text outside any report
	// IdleBytes are the stream-mode value lines outside a sterilize run
	// (and blank lines among them): they belong to no record but are not
	// noise; each became a telemetry sample.
	IdleBytes int64
	// BrokenSequences counts control sequences abandoned because a
	// report's start line (or, inside a report, its end line) was printed
	// inside them: line noise that looked like an ESC/P sequence.
	BrokenSequences int64
	// LastGarbage is the last line with text outside a report, decoded,
	// for the log.
	LastGarbage string
}

// Splitter cuts a printer byte stream into reports. Feed it chunks of any
// size with Write; every byte ends up in exactly one Report's Raw, in
// GarbageBytes or in IdleBytes, in stream order. A Splitter is not safe for
// concurrent use.
//
// Lines end at LF, CR or FF (CRLF is two line ends, the second one empty);
// bytes inside ESC/P control sequences never end a line, unless what they
// hold reads as a report's start or end line. The start and end regexps
// are matched against the decoded line (see docs/printer.md).
type Splitter struct {
	t      *Template
	onLine func(line []byte)

	esc     escState
	line    []byte // current line, not yet ended
	lineOff int64  // stream offset of line[0]
	// segStart is the index in line just after its last line-end byte
	// inside a control sequence: where a line printed inside it begins.
	segStart int
	consumed int64 // bytes fed so far

	// pending is the run of short lines without text seen outside a
	// report since the last other line: they are the next report's first
	// bytes if its start line follows, else garbage.
	pending    []byte
	pendingOff int64
	// crOwner says the last line outside a report had text and ended in
	// CR, so a lone LF after it is that line's (garbage or idle), not a
	// blank line of the next report.
	crOwner lineOwner

	inReport  bool
	ended     bool // end marker seen; absorbing trailing line ends
	report    []byte
	reportOff int64
	afterEnd  bool
	prevEnd   bool // the last complete line matched the end marker

	out   []Report
	stats SplitStats
}

type lineOwner int

const (
	ownerNone lineOwner = iota
	ownerGarbage
	ownerIdle
)

// NewSplitter returns a Splitter for t. onLine, if not nil, is called with
// every complete line (terminator included) in stream order; the slice is
// only valid during the call.
func NewSplitter(t *Template, onLine func(line []byte)) *Splitter {
	return &Splitter{t: t, onLine: onLine}
}

// Stats returns the counters so far.
func (s *Splitter) Stats() SplitStats { return s.stats }

// InReport says a report has started and not been emitted yet.
func (s *Splitter) InReport() bool { return s.inReport }

// Write feeds p and returns the reports it completed.
func (s *Splitter) Write(p []byte) []Report {
	s.out = nil
	for _, b := range p {
		s.feed(b)
	}
	return s.take()
}

// Idle tells the Splitter the line went quiet: a report whose end marker
// was seen is emitted now rather than when the next byte arrives.
func (s *Splitter) Idle() []Report {
	s.out = nil
	if s.inReport && s.ended && len(s.line) == 0 {
		s.emit(true)
	}
	return s.take()
}

// Cut tells the Splitter the stream was interrupted (port closed, power
// cycle, silence past the report timeout): the open report, with the
// partial line, is emitted as it is, and a partial line or pending blank
// lines outside a report are counted as garbage.
func (s *Splitter) Cut() []Report {
	s.out = nil
	if len(s.line) > 0 {
		if s.inReport {
			s.report = append(s.report, s.line...)
		} else {
			s.garbage(s.line)
		}
		s.line = s.line[:0]
	}
	if s.inReport {
		s.emit(s.ended)
	}
	if len(s.pending) > 0 {
		s.garbage(nil)
	}
	s.esc = escState{}
	s.segStart = 0
	s.prevEnd = false
	s.crOwner = ownerNone
	return s.take()
}

func (s *Splitter) take() []Report {
	out := s.out
	s.out = nil
	return out
}

func isLineEnd(b byte) bool { return b == '\n' || b == '\r' || b == '\f' }

func (s *Splitter) feed(b byte) {
	inEsc := s.esc.st != stText
	if !inEsc && s.inReport && s.ended && len(s.line) == 0 {
		if isLineEnd(b) || b == 0 {
			s.report = append(s.report, b)
			s.consumed++
			return
		}
		s.emit(true)
	}
	if len(s.line) == 0 {
		s.lineOff = s.consumed
		s.segStart = 0
	}
	s.line = append(s.line, b)
	s.consumed++
	if s.esc.feed(b) {
		if isLineEnd(b) {
			s.lineEndInSequence()
		}
		return
	}
	if isLineEnd(b) || len(s.line) >= maxLineBytes {
		s.endLine()
	}
}

// lineEndInSequence runs at a line-end byte inside a control sequence. A
// real sequence (a bit image, tab stops) may hold such a byte; but when the
// bytes since the previous one read as a report's start line (or, inside a
// report, its end line), the "sequence" was line noise: it is abandoned
// there, so that noise announcing 30,000 bytes of graphics cannot hide the
// reports printed after it.
func (s *Splitter) lineEndInSequence() {
	seg := s.line[s.segStart:]
	text := decodeLine(seg, s.t.charset)
	k := -1
	switch {
	case s.t.start.MatchString(text), s.inReport && s.t.end.MatchString(text):
		k = 0
	default:
		if j := s.startWithin(seg, 1); j > 0 {
			k = j
		}
	}
	if k < 0 {
		s.segStart = len(s.line)
		return
	}
	s.esc = escState{}
	s.stats.BrokenSequences++
	cut := s.segStart + k
	head := s.line[:cut]
	if s.onLine != nil {
		s.onLine(head)
	}
	s.takeHead(head)
	s.lineOff += int64(cut)
	s.line = append(s.line[:0], s.line[cut:]...)
	s.segStart = 0
	s.endLine()
}

func (s *Splitter) endLine() {
	line := s.line
	s.line = s.line[:0]
	from := s.segStart
	s.segStart = 0
	if s.onLine != nil {
		s.onLine(line)
	}
	text := decodeLine(line, s.t.charset)
	isStart := s.t.start.MatchString(text)
	isEnd := s.t.end.MatchString(text)
	if !isStart && !isEnd && (!s.inReport || s.t.mode == ModeReport) {
		// A start marker after other bytes on the same line: a device that
		// lost power mid-line and printed a new report when it came back,
		// noise before a report, or a control sequence that ended inside
		// the start line. The bytes before it stay with the old report
		// (which is cut) or go to garbage.
		if k := s.startWithin(line, max(from, 1)); k > 0 {
			s.takeHead(line[:k])
			s.lineOff += int64(k)
			line = line[k:]
			text = decodeLine(line, s.t.charset)
			isStart, isEnd = true, s.t.end.MatchString(text)
		}
	}
	switch {
	case s.inReport && isStart && s.t.mode == ModeReport:
		// A new report began before the old one ended: the device lost
		// power or was reset mid-print. Keep the old one, marked cut.
		s.emit(false)
		s.begin(line)
	case s.inReport:
		s.report = append(s.report, line...)
		if isEnd {
			s.ended = true
		} else if len(s.report) >= maxReportBytes {
			s.emit(false)
		}
	case isStart:
		s.begin(line)
		if isEnd && s.t.mode == ModeReport {
			s.ended = true
		}
	default:
		s.outside(line, text)
	}
	if text != "" { // blank lines (the LF of a CRLF) do not separate
		s.prevEnd = isEnd
	}
}

// takeHead files the bytes before a start (or end) marker found inside a
// line: the open report's, or garbage.
func (s *Splitter) takeHead(head []byte) {
	if s.inReport {
		s.report = append(s.report, head...)
		return
	}
	s.garbage(head)
	if t := decodeLine(head, s.t.charset); t != "" {
		s.stats.GarbageLines++
		s.stats.LastGarbage = t
	}
	s.crOwner = ownerNone
}

// outside files a complete line outside any report that starts none.
func (s *Splitter) outside(line []byte, text string) {
	owner := ownerNone
	switch {
	case s.crOwner != ownerNone && len(line) == 1 && line[0] == '\n':
		// The LF of the CR LF that ended the previous line.
		if s.crOwner == ownerIdle {
			s.idle(line)
		} else {
			s.garbage(line)
		}
	case text == "" && len(line) <= maxSetupLine:
		if len(s.pending)+len(line) > maxPending {
			s.garbage(nil)
		}
		if len(s.pending) == 0 {
			s.pendingOff = s.lineOff
		}
		s.pending = append(s.pending, line...)
	case s.t.mode == ModeStream && s.t.streamRe.MatchString(text):
		s.idle(line)
		owner = ownerIdle
	default:
		s.garbage(line)
		if text != "" {
			s.stats.GarbageLines++
			s.stats.LastGarbage = text
			owner = ownerGarbage
		}
	}
	s.crOwner = ownerNone
	if owner != ownerNone && line[len(line)-1] == '\r' {
		s.crOwner = owner
	}
}

func (s *Splitter) begin(line []byte) {
	s.inReport, s.ended = true, false
	s.reportOff = s.lineOff
	// A fresh array: emitted reports keep theirs.
	s.report = make([]byte, 0, len(s.pending)+len(line)+1024)
	if len(s.pending) > 0 {
		s.reportOff = s.pendingOff
		s.report = append(s.report, s.pending...)
		s.pending = s.pending[:0]
	}
	s.report = append(s.report, line...)
	s.afterEnd = s.prevEnd
	s.crOwner = ownerNone
}

// garbage counts b, and the pending lines before it, as garbage.
func (s *Splitter) garbage(b []byte) {
	s.stats.GarbageBytes += int64(len(s.pending) + len(b))
	s.pending = s.pending[:0]
}

// idle counts b, and the pending lines before it, as idle stream lines.
func (s *Splitter) idle(b []byte) {
	s.stats.IdleBytes += int64(len(s.pending) + len(b))
	s.pending = s.pending[:0]
}

func (s *Splitter) emit(ended bool) {
	r := Report{Raw: s.report, Offset: s.reportOff, Ended: ended, AfterEnd: s.afterEnd}
	s.out = append(s.out, r)
	s.stats.Reports++
	s.stats.ReportBytes += int64(len(r.Raw))
	if !ended {
		s.stats.Cut++
	}
	s.inReport, s.ended, s.report = false, false, nil
}

// maxStartSearch bounds the search for a start marker inside a line, which
// costs one decode and one regexp match per byte searched: only the last
// maxStartSearch bytes of a line are searched (no start line is longer).
const maxStartSearch = 512

// startWithin returns the offset k >= from, k > 0, at which line[k:]
// matches the start marker, or 0.
func (s *Splitter) startWithin(line []byte, from int) int {
	lo := max(from, 1, len(line)-maxStartSearch)
	if lo >= len(line) {
		return 0
	}
	// A cheap test first. The tail is also read with escape sequences
	// ignored: a sequence that began before the marker would hide it from
	// the first reading.
	tail := line[lo:]
	if !s.t.startAnywhere.MatchString(decodeLine(tail, s.t.charset)) &&
		!s.t.startAnywhere.MatchString(decodeIgnoringEscapes(tail, s.t.charset)) {
		return 0
	}
	for k := lo; k < len(line); k++ {
		if isLineEnd(line[k]) {
			break
		}
		if s.t.start.MatchString(decodeLine(line[k:], s.t.charset)) {
			return k
		}
	}
	return 0
}
