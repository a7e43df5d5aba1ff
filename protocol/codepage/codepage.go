// Package codepage maps the DOS code pages that sterilizer printers use
// (CP437, CP850) to Unicode and back. Printed reports are part of the
// contract between a sterilizer and the gateway: the simulator encodes
// with these tables and the printer tap decodes with the same ones.
package codepage

// table returns the upper half (0x80–0xFF) of a code page, nil if unknown.
func table(name string) *[128]rune {
	switch name {
	case "cp437":
		return &cp437High
	case "cp850":
		return &cp850High
	}
	return nil
}

// Known reports whether name ("cp437" or "cp850") is a code page here.
func Known(name string) bool { return table(name) != nil }

// Decode returns the character byte b stands for in code page name. Bytes
// below 0x80 are ASCII in every code page; an unknown code page decodes
// bytes above as U+FFFD.
func Decode(name string, b byte) rune {
	if b < 0x80 {
		return rune(b)
	}
	t := table(name)
	if t == nil {
		return '\uFFFD'
	}
	return t[b-0x80]
}

// Encode returns the byte for r in code page name, and false when the code
// page has no such character (a printer prints '?' then).
func Encode(name string, r rune) (byte, bool) {
	if r < 0x80 {
		return byte(r), true
	}
	if t := table(name); t != nil {
		for i, c := range t {
			if c == r {
				return byte(0x80 + i), true
			}
		}
	}
	return '?', false
}
