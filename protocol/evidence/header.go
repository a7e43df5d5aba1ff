package evidence

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// readHeader reads the top-level members of a payload that verification
// needs, skipping the others (samples, phases: nearly all of a cycle
// record's bytes) without decoding them. encoding/json would decode
// them twice over, and verify spent most of its time there.
//
// It reads what a JSON parser reads, with two differences that the
// signatures make harmless: member names match exactly (encoding/json also
// matches "SEQ" to seq; JavaScript, Python and the gateway do not), and
// the skipped values are not checked for errors (an entry the gateway did
// not write cannot carry its signature, nor be covered by one). A member
// given twice counts as its last value, as in encoding/json and
// JavaScript.
func readHeader(b []byte, h *Header) error {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return errors.New("not a JSON object")
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return endOfObject(b, i+1)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return fmt.Errorf("offset %d: a member name was expected", i)
		}
		end, err := skipString(b, i)
		if err != nil {
			return err
		}
		name := b[i+1 : end-1]
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return fmt.Errorf("offset %d: ':' was expected", i)
		}
		i = skipSpace(b, i+1)
		start := i
		if i, err = skipValue(b, i); err != nil {
			return err
		}
		if err := h.set(name, b[start:i]); err != nil {
			return fmt.Errorf("member %q: %w", name, err)
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return errors.New("the object is not closed")
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return endOfObject(b, i+1)
		default:
			return fmt.Errorf("offset %d: ',' or '}' was expected", i)
		}
	}
}

func endOfObject(b []byte, i int) error {
	if skipSpace(b, i) != len(b) {
		return errors.New("bytes after the JSON object")
	}
	return nil
}

// set stores the raw value of one member when verification needs it.
func (h *Header) set(name, raw []byte) error {
	var s *string
	var n *uint64
	switch string(name) {
	case "schema":
		s = &h.Schema
	case "id":
		s = &h.ID
	case "device":
		s = &h.Device
	case "prev_hash":
		s = &h.PrevHash
	case "kind":
		s = &h.EventKind
	case "covers_hash":
		s = &h.CoversHash
	case "next_key":
		s = &h.NextKey
	case "next_public_key":
		s = &h.NextPublicKey
	case "last_hash":
		s = &h.LastHash
	case "seq":
		n = &h.Seq
	case "from_seq":
		n = &h.FromSeq
	case "to_seq":
		n = &h.ToSeq
	case "covers_seq":
		n = &h.CoversSeq
	case "last_seq":
		n = &h.LastSeq
	default:
		return nil
	}
	if s != nil {
		if len(raw) >= 2 && raw[0] == '"' && bytes.IndexByte(raw, '\\') < 0 {
			*s = string(raw[1 : len(raw)-1])
			return nil
		}
		return json.Unmarshal(raw, s)
	}
	v, err := strconv.ParseUint(string(raw), 10, 64)
	if err != nil {
		return json.Unmarshal(raw, n) // its error names the JSON type
	}
	*n = v
	return nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the offset after the string that starts at b[i].
func skipString(b []byte, i int) (int, error) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("offset %d: the string is not closed", i)
}

// skipValue returns the offset after the value that starts at b[i].
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errors.New("a value was expected")
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, err := skipString(b, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, fmt.Errorf("offset %d: the value is not closed", i)
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	if j == i {
		return 0, fmt.Errorf("offset %d: a value was expected", i)
	}
	return j, nil
}
