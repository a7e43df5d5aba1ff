package printer

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/sterigate/sterigate/protocol/codepage"
)

// Charsets a template may name. The printer port carries single-byte code
// pages; utf8 is for devices that print through a modern interface.
var charsets = []string{"ascii", "latin1", "cp437", "cp850", "utf8"}

func checkCharset(name string) error {
	for _, c := range charsets {
		if c == name {
			return nil
		}
	}
	return fmt.Errorf("charset %q is not one of %s", name, strings.Join(charsets, ", "))
}

// escState follows ESC/P (Epson) printer control sequences so that their
// parameter bytes are neither taken for line ends (ESC 3 0x0C sets the line
// spacing, it is not a form feed) nor shown as text.
type escState struct {
	st   int
	need int // bytes still to skip in stSkip, or header bytes in stCount
	mult int // bytes of data per unit for stCount
	lo   int // low byte of a two-byte count
}

const (
	stText   = iota
	stCmd    // after ESC, the command byte comes next
	stSkip   // skipping need fixed parameter bytes
	stC      // ESC C n, or ESC C NUL n
	stNUL    // ESC B / ESC D: tab stops up to a NUL, at most maxTabStops
	stStarM  // ESC * m: graphics mode byte
	stParen  // ESC ( c: the command byte of an extended command
	stCount  // reading nL then nH, then mult×n data bytes
	stCountH // the nH byte
)

// maxTabStops is the most tab stops ESC D sets (ESC B sets up to 16).
const maxTabStops = 32

// feed reports whether b belongs to a control sequence (the ESC byte
// included). Unknown ESC commands are taken to have no parameters.
func (e *escState) feed(b byte) bool {
	switch e.st {
	case stText:
		if b == 0x1b {
			e.st = stCmd
			return true
		}
		return false
	case stCmd:
		e.st = stText
		switch b {
		case '-', 'W', '!', 'x', 'a', 't', 'R', '3', 'A', 'J', 'Q', 'l', 'k', 'U', 'S', 'w', 'p', '+', 'N', 'r', '/', 's', 'i', 'j', 'q', 'h', 'I', 'm', 'e', 'f':
			e.st, e.need = stSkip, 1
		case 'C':
			e.st = stC
		case 'B', 'D':
			e.st, e.need = stNUL, maxTabStops
		case '$', '\\', 'c', ' ':
			if b == ' ' {
				e.st, e.need = stSkip, 1
			} else {
				e.st, e.need = stSkip, 2
			}
		case 'K', 'L', 'Y', 'Z':
			e.st, e.mult = stCount, 1
		case '*':
			e.st = stStarM
		case '(':
			e.st = stParen
		}
		return true
	case stSkip:
		e.need--
		if e.need <= 0 {
			e.st = stText
		}
		return true
	case stC:
		if b == 0 {
			e.st, e.need = stSkip, 1
		} else {
			e.st = stText
		}
		return true
	case stNUL:
		// Noise that looks like ESC B must not swallow everything up to
		// the next NUL byte: after the most tab stops ESC/P allows, the
		// sequence is over, terminated or not.
		e.need--
		if b == 0 || e.need < 0 {
			e.st = stText
		}
		return true
	case stStarM:
		switch {
		case b < 32:
			e.mult = 1
		case b < 64:
			e.mult = 3
		default:
			e.mult = 6
		}
		e.st = stCount
		return true
	case stParen:
		e.st, e.mult = stCount, 1
		return true
	case stCount:
		e.lo = int(b)
		e.st = stCountH
		return true
	case stCountH:
		e.need = (e.lo + int(b)<<8) * e.mult
		if e.need == 0 {
			e.st = stText
		} else {
			e.st = stSkip
		}
		return true
	}
	e.st = stText
	return false
}

// decodeLine turns one printed line into text for the template's regexps:
// control sequences and control characters removed (TAB becomes a space,
// BS overstrikes are undone), bytes decoded from the code page, trailing
// blanks trimmed. A byte the charset cannot map becomes '?', like a
// printer's mojibake, so "134?C" and "134°C" are both seen.
func decodeLine(line []byte, charset string) string {
	return decode(line, charset, true)
}

// decodeIgnoringEscapes decodes line as if ESC started no control
// sequence: the parameter bytes of a sequence read as text. Noise that
// looks like the start of a long sequence hides nothing from it.
func decodeIgnoringEscapes(line []byte, charset string) string {
	return decode(line, charset, false)
}

func decode(line []byte, charset string, skipEscapes bool) string {
	var esc escState
	var out []rune
	for i := 0; i < len(line); i++ {
		b := line[i]
		if skipEscapes && esc.feed(b) {
			continue
		}
		switch {
		case b == '\t':
			out = append(out, ' ')
		case b == '\b':
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		case b < 0x20 || b == 0x7f:
			// control characters (CR, LF, FF, SI, DC2, ...) carry no text
		case b < 0x80:
			out = append(out, rune(b))
		default:
			switch charset {
			case "latin1":
				out = append(out, rune(b))
			case "cp437", "cp850":
				out = append(out, codepage.Decode(charset, b))
			case "utf8":
				r, size := utf8.DecodeRune(line[i:])
				if r == utf8.RuneError {
					out = append(out, '?')
				} else {
					out = append(out, r)
					i += size - 1
				}
			default:
				out = append(out, '?')
			}
		}
	}
	return strings.TrimRight(string(out), " ")
}

// Visible returns line with every control byte and every byte outside
// printable ASCII shown in angle brackets (<ESC>, <CR>, <0xF8>), for the
// tap command's raw view.
func Visible(line []byte) string {
	var b strings.Builder
	for _, c := range line {
		switch {
		case c == 0x1b:
			b.WriteString("<ESC>")
		case c == '\r':
			b.WriteString("<CR>")
		case c == '\n':
			b.WriteString("<LF>")
		case c == '\f':
			b.WriteString("<FF>")
		case c == '\t':
			b.WriteString("<TAB>")
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, "<0x%02X>", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// DecodePrintout turns a record's raw printout into text as the template
// with charset reads it, line by line: control sequences removed, bytes
// decoded from the code page, a byte the charset cannot map shown as '?'.
// The console shows printouts this way.
func DecodePrintout(raw []byte, charset string) string {
	var b strings.Builder
	for line := range bytes.SplitSeq(raw, []byte{'\n'}) {
		b.WriteString(decodeLine(line, charset))
		b.WriteByte('\n')
	}
	return strings.TrimRight(b.String(), "\n")
}
