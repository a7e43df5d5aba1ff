// Package strictyaml is sterigate's one strict YAML reader: the config,
// device profiles, printer templates and simulator scenarios are all read
// with it, so a mistake reads the same in each of them.
//
// It walks go.yaml.in/yaml/v3 nodes by hand instead of yaml.Unmarshal,
// because the library's own errors name neither the key path nor, for
// unknown keys, the keys that are allowed; ours name both, with the line.
// A Walker collects every mistake (Problem) rather than stopping at the
// first, so a commissioning engineer fixes a file in one pass; each reader
// turns the Problems into its own error type.
package strictyaml

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Problem is one mistake: the line (0 when unknown), the key path
// ("devices[0].serial.baud") and what is wrong, in words.
type Problem struct {
	Line int
	Path string
	Msg  string
}

// In returns the problem as the readers print it, located in file:
// "file:line: path: message" (no line when it is 0, no path when empty).
func (p Problem) In(file string) string {
	var b strings.Builder
	b.WriteString(file)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	if p.Path != "" {
		b.WriteString(": ")
		b.WriteString(p.Path)
	}
	b.WriteString(": ")
	b.WriteString(p.Msg)
	return b.String()
}

// Parse reads data as one YAML document and returns its root node: nil
// (and no problem) when the file holds no document or an empty one.
// Syntax errors come back as a Problem on the line where the mistake is
// (Locate). A second document with content is a mistake: the readers take
// one, and a silently ignored second half of a file would be worse.
func Parse(data []byte) (*yaml.Node, *Problem) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		line, msg := Locate(data, err)
		return nil, &Problem{Line: line, Msg: "not valid YAML: " + msg}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != nil && !errors.Is(err, io.EOF) {
		line, msg := Locate(data, err)
		return nil, &Problem{Line: line, Msg: "not valid YAML: " + msg}
	} else if err == nil && len(extra.Content) > 0 && !IsNull(extra.Content[0]) {
		return nil, &Problem{Line: extra.Content[0].Line, Msg: "only one YAML document is allowed; a second one (after ---) begins here"}
	}
	if len(doc.Content) == 0 || IsNull(doc.Content[0]) {
		return nil, nil
	}
	return doc.Content[0], nil
}

// Lines maps key paths ("mqtt.password_file", "devices[2]") to the line
// they are on, so a mistake found after the walk (a profile that does not
// load, two keys that contradict each other) is reported on the line that
// names it.
type Lines map[string]int

// Line returns the line of the key at path, or of its closest enclosing
// key present in the file; 0 when none is.
func (l Lines) Line(path string) int {
	for p := path; p != ""; {
		if n, ok := l[p]; ok {
			return n
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

// Walker reads a node tree and collects the Problems it finds. The zero
// value is ready to use.
type Walker struct {
	Problems []Problem
	// Max, when above 0, bounds Problems: past it a file is probably not
	// what it should be at all, and more lines help nobody.
	Max int
	// Lines, when not nil, receives the line of every key and list item
	// the walk visits.
	Lines Lines
}

// Failf records a problem about the value n (nil: no line) at path.
func (w *Walker) Failf(n *yaml.Node, path, format string, args ...any) {
	if w.Max > 0 && len(w.Problems) >= w.Max {
		return
	}
	line := 0
	if n != nil {
		line = n.Line
	}
	w.Problems = append(w.Problems, Problem{Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// FailAtf records a problem about the key at path, found after the walk
// (two keys that contradict each other, a required key left out): on the
// line of that key, or of its closest enclosing key in the file (Lines).
func (w *Walker) FailAtf(path, format string, args ...any) {
	if w.Max > 0 && len(w.Problems) >= w.Max {
		return
	}
	w.Problems = append(w.Problems, Problem{Line: w.Lines.Line(path), Path: path, Msg: fmt.Sprintf(format, args...)})
}

// InFileOrder returns the problems sorted by line (stably), so a list
// reads top to bottom like the file.
func (w *Walker) InFileOrder() []Problem {
	out := append([]Problem(nil), w.Problems...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	return out
}

// Decode reads the value n of the key at path.
type Decode func(n *yaml.Node, path string)

// Field is one key a mapping accepts and how its value is read.
type Field struct {
	Key    string
	Decode Decode
}

// Entry is one key of a mapping whose keys are data (device codes,
// program names), with its nodes for error lines.
type Entry struct {
	Key     string
	KeyNode *yaml.Node
	Value   *yaml.Node
}

// Mapping reads the mapping n: each key's value goes to its field's
// Decode, in file order. A key no field names and a key given twice are
// problems. An empty value (key: with nothing after it) is an empty
// mapping.
func (w *Walker) Mapping(n *yaml.Node, path string, fields ...Field) {
	keys := make([]string, len(fields))
	for i, f := range fields {
		keys[i] = f.Key
	}
	entries, _ := w.Entries(n, path, keys)
	for _, e := range entries {
		for _, f := range fields {
			if f.Key == e.Key {
				f.Decode(e.Value, Join(path, e.Key))
				break
			}
		}
	}
}

// Entries returns the keys of the mapping n with their values, in file
// order, for a mapping whose keys are data. A key given twice is a
// problem; so is a key not in allowed, unless allowed is nil (any key).
// ok is false when n is not a mapping (the problem is recorded); an empty
// value is an empty mapping.
func (w *Walker) Entries(n *yaml.Node, path string, allowed []string) (entries []Entry, ok bool) {
	n = Deref(n)
	if IsNull(n) {
		return nil, true
	}
	if n.Kind != yaml.MappingNode {
		w.Failf(n, path, "must be a mapping of keys to values, not %s", Describe(n))
		return nil, false
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], Deref(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			w.Failf(k, path, "a key must be a plain word, not %s", Describe(k))
			continue
		}
		p := Join(path, k.Value)
		if seen[k.Value] {
			w.Failf(k, p, "is given twice")
			continue
		}
		seen[k.Value] = true
		if w.Lines != nil {
			w.Lines[p] = k.Line
		}
		if allowed != nil && !contains(allowed, k.Value) {
			w.Failf(k, p, "unknown key (allowed here: %s)", strings.Join(allowed, ", "))
			continue
		}
		entries = append(entries, Entry{Key: k.Value, KeyNode: k, Value: v})
	}
	return entries, true
}

// Sequence calls each for every item of the list n, with the item's path
// ("brokers[2]"). ok is false when n is not a list (the problem is
// recorded); an empty value is an empty list.
func (w *Walker) Sequence(n *yaml.Node, path string, each func(i int, item *yaml.Node, path string)) (ok bool) {
	n = Deref(n)
	if IsNull(n) {
		return true
	}
	if n.Kind != yaml.SequenceNode {
		w.Failf(n, path, "must be a list, not %s", Describe(n))
		return false
	}
	for i, item := range n.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		if w.Lines != nil {
			w.Lines[p] = item.Line
		}
		each(i, Deref(item), p)
	}
	return true
}

// scalar returns the text of the single value n, or records that n is not
// one (what names the kind of value wanted: "a whole number").
func (w *Walker) scalar(n *yaml.Node, path, what string) (string, bool) {
	n = Deref(n)
	if n.Kind != yaml.ScalarNode || IsNull(n) {
		w.Failf(n, path, "must be %s, not %s", what, Describe(n))
		return "", false
	}
	return n.Value, true
}

// Text reads a text value. An empty value is the empty text: whether a
// text may be empty is for the caller to say, with its reason.
func (w *Walker) Text(n *yaml.Node, path string) (string, bool) {
	if IsNull(Deref(n)) {
		return "", true
	}
	return w.scalar(n, path, "a text value")
}

// Int reads a whole number from lo to hi. Hexadecimal (0x1F), octal
// (0o17), binary (0b101) and digit separators (1_000) are accepted.
func (w *Walker) Int(n *yaml.Node, path string, lo, hi int64) (int64, bool) {
	s, ok := w.scalar(n, path, "a whole number")
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 0, 64)
	if err != nil {
		w.Failf(n, path, "%q is not a whole number", s)
		return 0, false
	}
	if v < lo || v > hi {
		w.Failf(n, path, "%d is out of range (%d to %d)", v, lo, hi)
		return 0, false
	}
	return v, true
}

// Number reads a finite number.
func (w *Walker) Number(n *yaml.Node, path string) (float64, bool) {
	s, ok := w.scalar(n, path, "a number")
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		w.Failf(n, path, "%q is not a finite number", s)
		return 0, false
	}
	return v, true
}

// NumberAbove reads a finite number above lo and at most hi: a
// quantity for which lo itself (usually 0) means nothing.
func (w *Walker) NumberAbove(n *yaml.Node, path string, lo, hi float64) (float64, bool) {
	v, ok := w.Number(n, path)
	if !ok {
		return 0, false
	}
	if v <= lo || v > hi {
		w.Failf(n, path, "%s is out of range (above %g, at most %g)", Deref(n).Value, lo, hi)
		return 0, false
	}
	return v, true
}

// Bool reads true or false (yes/no and on/off too, in any case).
func (w *Walker) Bool(n *yaml.Node, path string) (value, ok bool) {
	s, ok := w.scalar(n, path, "true or false")
	if !ok {
		return false, false
	}
	switch strings.ToLower(s) {
	case "true", "yes", "on":
		return true, true
	case "false", "no", "off":
		return false, true
	}
	w.Failf(n, path, "%q is not true or false", s)
	return false, false
}

// Duration reads a duration (Go's 500ms, 1m30s, 72h, plus days: 3650d) of
// at least lo and, when hi is above 0, at most hi.
func (w *Walker) Duration(n *yaml.Node, path string, lo, hi time.Duration) (time.Duration, bool) {
	s, ok := w.scalar(n, path, "a duration")
	if !ok {
		return 0, false
	}
	v, err := ParseDuration(s)
	if err != nil {
		w.Failf(n, path, "%q is not a duration (write e.g. 500ms, 90s, 1m30s, 72h, 3650d)", s)
		return 0, false
	}
	if v < lo {
		w.Failf(n, path, "%s is too short (at least %s)", s, lo)
		return 0, false
	}
	if hi > 0 && v > hi {
		w.Failf(n, path, "%s is too long (at most %s)", s, hi)
		return 0, false
	}
	return v, true
}

// ParseDuration is time.ParseDuration plus a "d" (days) suffix, because
// retention is naturally said in days and years of days.
func ParseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil || n < 0 || math.IsInf(n, 0) || n > float64(math.MaxInt64)/float64(24*time.Hour) {
			return 0, fmt.Errorf("bad days %q", s)
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	return time.ParseDuration(s)
}

// ByteSize reads a size in bytes: 500MB, 2GiB, 0.
func (w *Walker) ByteSize(n *yaml.Node, path string) (int64, bool) {
	s, ok := w.scalar(n, path, "a size")
	if !ok {
		return 0, false
	}
	v, err := ParseByteSize(s)
	if err != nil {
		w.Failf(n, path, "%q is not a size (write e.g. 500MB, 2GB, 0 for no limit)", s)
		return 0, false
	}
	return v, true
}

// ParseByteSize reads 500MB, 2GiB, 1.5 GB, 0: decimal (KB, MB, GB, TB) and
// binary (KiB, MiB, GiB, TiB) units, plain bytes without one.
func ParseByteSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range units {
		if num, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 || f*float64(mult) >= math.MaxInt64 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return int64(f * float64(mult)), nil
}

// The Decode forms of the readers: each sets *dst when the value reads
// and leaves it alone otherwise, for Field lists.

// SetStr reads a text value into dst.
func (w *Walker) SetStr(dst *string) Decode {
	return func(n *yaml.Node, path string) {
		if s, ok := w.Text(n, path); ok {
			*dst = s
		}
	}
}

// SetStrList reads a list of text values into dst.
func (w *Walker) SetStrList(dst *[]string) Decode {
	return func(n *yaml.Node, path string) {
		*dst = nil
		w.Sequence(n, path, func(_ int, item *yaml.Node, p string) {
			if s, ok := w.Text(item, p); ok {
				*dst = append(*dst, s)
			}
		})
	}
}

// SetInt reads a whole number from lo to hi into dst.
func (w *Walker) SetInt(dst *int, lo, hi int) Decode {
	return func(n *yaml.Node, path string) {
		if v, ok := w.Int(n, path, int64(lo), int64(hi)); ok {
			*dst = int(v)
		}
	}
}

// SetNumber reads a finite number above lo and at most hi into dst.
func (w *Walker) SetNumber(dst *float64, lo, hi float64) Decode {
	return func(n *yaml.Node, path string) {
		if v, ok := w.NumberAbove(n, path, lo, hi); ok {
			*dst = v
		}
	}
}

// SetBool reads true or false into dst.
func (w *Walker) SetBool(dst *bool) Decode {
	return func(n *yaml.Node, path string) {
		if v, ok := w.Bool(n, path); ok {
			*dst = v
		}
	}
}

// SetDuration reads a duration of at least lo into dst.
func (w *Walker) SetDuration(dst *time.Duration, lo time.Duration) Decode {
	return func(n *yaml.Node, path string) {
		if v, ok := w.Duration(n, path, lo, 0); ok {
			*dst = v
		}
	}
}

// SetByteSize reads a size in bytes into dst.
func (w *Walker) SetByteSize(dst *int64) Decode {
	return func(n *yaml.Node, path string) {
		if v, ok := w.ByteSize(n, path); ok {
			*dst = v
		}
	}
}

// IsNull reports whether n is an empty value (key: with nothing after
// it, ~, null).
func IsNull(n *yaml.Node) bool {
	return n != nil && n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// Describe names what n is, for "must be …, not <Describe>".
func Describe(n *yaml.Node) string {
	n = Deref(n)
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if IsNull(n) {
			return "empty"
		}
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "something else"
}

// Deref follows YAML aliases (*name) to the node they stand for.
func Deref(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 16; i++ {
		n = n.Alias
	}
	return n
}

// Join appends key to the key path path.
func Join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
