package printer

// Limits that keep a stream of garbage from growing memory without bound.
const (
	// maxLineBytes ends a line that has no line end after this many bytes.
	maxLineBytes = 4096
	// maxReportBytes cuts a report that has no end marker after this many
	// bytes (a real report is a few KiB).
	maxReportBytes = 1 << 20
)

// Report is one printout cut from the stream.
type Report struct {
	// Raw is the exact bytes of the report, from the first byte of its
	// start line to the last line end (and form feeds) after its end line.
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

// SplitStats counts what the Splitter has seen.
type SplitStats struct {
	Reports      int64 // reports emitted, ended or not
	Cut          int64 // reports emitted without their end marker
	ReportBytes  int64 // bytes in emitted reports
	GarbageBytes int64 // bytes outside any report (idle lines in stream mode)
	GarbageLines int64 // non-blank lines outside any report
	// LastGarbage is the last non-blank line outside a report, decoded,
	// for the log.
	LastGarbage string
}

// Splitter cuts a printer byte stream into reports. Feed it chunks of any
// size with Write; every byte ends up in exactly one Report's Raw or in
// GarbageBytes, in stream order. A Splitter is not safe for concurrent use.
//
// Lines end at LF, CR or FF (CRLF is two line ends, the second one empty);
// bytes inside ESC/P control sequences never end a line. The start and end
// regexps are matched against the decoded line (see docs/printer.md).
type Splitter struct {
	t      *Template
	onLine func(line []byte)

	esc      escState
	line     []byte // current line, not yet ended
	lineOff  int64  // stream offset of line[0]
	consumed int64  // bytes fed so far

	inReport  bool
	ended     bool // end marker seen; absorbing trailing line ends
	report    []byte
	reportOff int64
	afterEnd  bool
	prevEnd   bool // the last complete line matched the end marker

	out   []Report
	stats SplitStats
}

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
// partial line, is emitted as it is, and a partial line outside a report
// is counted as garbage.
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
	s.esc = escState{}
	s.prevEnd = false
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
	}
	s.line = append(s.line, b)
	s.consumed++
	if s.esc.feed(b) {
		return
	}
	if isLineEnd(b) || len(s.line) >= maxLineBytes {
		s.endLine()
	}
}

func (s *Splitter) endLine() {
	line := s.line
	s.line = s.line[:0]
	if s.onLine != nil {
		s.onLine(line)
	}
	text := decodeLine(line, s.t.charset)
	isStart := s.t.start.MatchString(text)
	isEnd := s.t.end.MatchString(text)
	if !isStart && !isEnd && (!s.inReport || s.t.mode == ModeReport) {
		// A start marker after other bytes on the same line: a device that
		// lost power mid-line and printed a new report when it came back,
		// or noise before a report. The bytes before it stay with the old
		// report (which is cut) or go to garbage.
		if k := s.startWithin(line); k > 0 {
			head := line[:k]
			if s.inReport {
				s.report = append(s.report, head...)
				s.emit(false)
			} else {
				s.garbage(head)
				if t := decodeLine(head, s.t.charset); t != "" {
					s.stats.GarbageLines++
					s.stats.LastGarbage = t
				}
			}
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
		s.garbage(line)
		if text != "" {
			s.stats.GarbageLines++
			s.stats.LastGarbage = text
		}
	}
	if text != "" { // blank lines (the LF of a CRLF) do not separate
		s.prevEnd = isEnd
	}
}

func (s *Splitter) begin(line []byte) {
	s.inReport, s.ended = true, false
	s.report = append(s.report[:0:0], line...)
	s.reportOff = s.lineOff
	s.afterEnd = s.prevEnd
}

func (s *Splitter) garbage(line []byte) {
	s.stats.GarbageBytes += int64(len(line))
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
// costs one regexp match per byte of the line.
const maxStartSearch = 512

// startWithin returns the offset k > 0 at which line[k:] matches the start
// marker, or 0.
func (s *Splitter) startWithin(line []byte) int {
	if len(line) > maxStartSearch || !s.t.startAnywhere.MatchString(decodeLine(line, s.t.charset)) {
		return 0
	}
	for k := 1; k < len(line); k++ {
		if isLineEnd(line[k]) {
			break
		}
		if s.t.start.MatchString(decodeLine(line[k:], s.t.charset)) {
			return k
		}
	}
	return 0
}
