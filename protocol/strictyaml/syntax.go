package strictyaml

// Syntax errors: go.yaml.in/yaml/v3 reports, for most parser errors, the
// line *before* the one where the enclosing construct began (it prints a
// zero-based line as if it were one-based) instead of the line of the
// problem: a badly indented key on line 7 of a device list that begins on
// line 5 is reported at line 4. Its scanner errors (a tab, a missing
// colon, an unclosed quote) are on the right line. "line 4" for a mistake
// on line 7 sends a commissioning engineer to the wrong place, so Locate
// finds the right one.

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxLines bounds the search: it parses growing prefixes of the file, so
// its cost is quadratic in the file's length. Configs, profiles and
// templates are a few hundred lines.
const maxLines = 5000

var lineMessage = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// Locate returns the line (1-based) and the message of err, an error
// yaml.v3 returned for data. The line is the first line at which the
// file, read from the top, fails with the same message: where a reader
// going down the file would first see the mistake (for an unclosed
// bracket or quote, the line that opened it).
func Locate(data []byte, err error) (line int, msg string) {
	text := err.Error()
	msg = strings.TrimPrefix(text, "yaml: ")
	reported := 1
	if m := lineMessage.FindStringSubmatch(text); m != nil {
		reported, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	if len(lines) > maxLines {
		return max(reported, 1), msg
	}
	end := 0
	for i, l := range lines {
		end += len(l)
		e := decodeAll(data[:end])
		if e != nil && messageOf(e) == msg {
			return i + 1, msg
		}
	}
	return max(reported, 1), msg
}

// decodeAll decodes every document of data, as Parse does, and returns
// the first error.
func decodeAll(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

func messageOf(err error) string {
	text := err.Error()
	if m := lineMessage.FindStringSubmatch(text); m != nil {
		return m[2]
	}
	return strings.TrimPrefix(text, "yaml: ")
}
