package strictyaml

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

type sample struct {
	name    string
	count   int
	scale   float64
	on      bool
	every   time.Duration
	quota   int64
	tags    []string
	nested  string
	entries []Entry
}

// walk reads doc with every reader the package has, the way a reader of
// a real file does.
func walk(t testing.TB, doc string) (*sample, *Walker) {
	t.Helper()
	root, p := Parse([]byte(doc))
	if p != nil {
		t.Fatalf("Parse: %+v", p)
	}
	w := &Walker{Lines: Lines{}}
	var s sample
	if root == nil {
		return &s, w
	}
	w.Mapping(root, "",
		Field{"name", w.SetStr(&s.name)},
		Field{"count", w.SetInt(&s.count, 1, 10)},
		Field{"scale", w.SetNumber(&s.scale, 0, 100)},
		Field{"on", w.SetBool(&s.on)},
		Field{"every", w.SetDuration(&s.every, time.Second)},
		Field{"quota", w.SetByteSize(&s.quota)},
		Field{"tags", w.SetStrList(&s.tags)},
		Field{"inner", func(n *yaml.Node, p string) {
			w.Mapping(n, p, Field{"x", w.SetStr(&s.nested)})
		}},
		Field{"codes", func(n *yaml.Node, p string) {
			s.entries, _ = w.Entries(n, p, nil)
		}},
	)
	return &s, w
}

func TestWalkReadsEveryKind(t *testing.T) {
	s, w := walk(t, `name: a
count: 0x3
scale: 2.5
on: yes
every: 2d
quota: 2GiB
tags: [x, y]
inner:
  x: deep
codes:
  1: one
  "02": two
`)
	if len(w.Problems) > 0 {
		t.Fatalf("problems: %+v", w.Problems)
	}
	if s.name != "a" || s.count != 3 || s.scale != 2.5 || !s.on || s.every != 48*time.Hour || s.quota != 2<<30 ||
		strings.Join(s.tags, ",") != "x,y" || s.nested != "deep" || len(s.entries) != 2 || s.entries[1].Key != "02" {
		t.Errorf("read %+v", s)
	}
	if w.Lines.Line("inner.x") != 9 || w.Lines.Line("tags[1]") != 7 || w.Lines.Line("inner.x.nothing") != 9 || w.Lines.Line("absent") != 0 {
		t.Errorf("lines %v", w.Lines)
	}
}

// Each mistake is named once, on its line, with its key path.
func TestEveryMistakeNamesLineAndPath(t *testing.T) {
	for _, c := range []struct {
		doc  string
		want string // "line path: message"
	}{
		{"name: a\ncolour: red\n", "2 colour: unknown key (allowed here: name, count, scale, on, every, quota, tags, inner, codes)"},
		{"name: a\nname: b\n", "2 name: is given twice"},
		{"inner: 3\n", `1 inner: must be a mapping of keys to values, not the value "3"`},
		{"inner:\n  - 1\n", "2 inner: must be a mapping of keys to values, not a list"},
		{"inner:\n  ? [a]\n  : 1\n", "2 inner: a key must be a plain word, not a list"},
		{"tags: x\n", `1 tags: must be a list, not the value "x"`},
		{"tags:\n  - a\n  - {b: 1}\n", "3 tags[1]: must be a text value, not a mapping"},
		{"count: many\n", `1 count: "many" is not a whole number`},
		{"count: 11\n", "1 count: 11 is out of range (1 to 10)"},
		{"count:\n", "1 count: must be a whole number, not empty"},
		{"scale: .nan\n", `1 scale: ".nan" is not a finite number`},
		{"scale: fast\n", `1 scale: "fast" is not a finite number`},
		{"scale: 0\n", "1 scale: 0 is out of range (above 0, at most 100)"},
		{"scale: [1]\n", "1 scale: must be a number, not a list"},
		{"on: maybe\n", `1 on: "maybe" is not true or false`},
		{"every: soon\n", `1 every: "soon" is not a duration (write e.g. 500ms, 90s, 1m30s, 72h, 3650d)`},
		{"every: 10ms\n", "1 every: 10ms is too short (at least 1s)"},
		{"quota: lots\n", `1 quota: "lots" is not a size (write e.g. 500MB, 2GB, 0 for no limit)`},
		{"codes:\n  1: a\n  1: b\n", "3 codes.1: is given twice"},
		{"codes: [1]\n", "1 codes: must be a mapping of keys to values, not a list"},
	} {
		_, w := walk(t, c.doc)
		var got []string
		for _, p := range w.InFileOrder() {
			got = append(got, fmt.Sprintf("%d %s: %s", p.Line, p.Path, p.Msg))
		}
		if len(got) != 1 || got[0] != c.want {
			t.Errorf("%q:\n got %q\nwant %q", c.doc, got, c.want)
		}
	}
}

func TestDurationUpperBound(t *testing.T) {
	root, _ := Parse([]byte("gap: 2h\n"))
	var w Walker
	if _, ok := w.Duration(root.Content[1], "gap", 10*time.Millisecond, time.Hour); ok {
		t.Fatal("2h accepted as at most 1h")
	}
	if got := w.Problems[0]; got.Line != 1 || got.Path != "gap" || got.Msg != "2h is too long (at most 1h0m0s)" {
		t.Errorf("problem %+v", got)
	}
}

func TestAliasesAreFollowed(t *testing.T) {
	s, w := walk(t, "inner: &i\n  x: shared\nname: &n text\ntags: [*n]\n")
	if len(w.Problems) > 0 || s.nested != "shared" || s.tags[0] != "text" {
		t.Errorf("%+v %+v", s, w.Problems)
	}
}

func TestEmptyValuesAreEmpty(t *testing.T) {
	s, w := walk(t, "name:\ninner:\ntags:\ncodes:\n")
	if len(w.Problems) > 0 || s.name != "" || s.tags != nil || s.entries != nil {
		t.Errorf("%+v %+v", s, w.Problems)
	}
}

func TestMaxBoundsProblems(t *testing.T) {
	w := &Walker{Max: 2}
	for range 5 {
		w.Failf(nil, "x", "bad")
	}
	if len(w.Problems) != 2 {
		t.Errorf("%d problems kept, want 2", len(w.Problems))
	}
}

func TestParseDocuments(t *testing.T) {
	for _, c := range []struct {
		doc  string
		root bool
		line int
		msg  string
	}{
		{"", false, 0, ""},
		{"# a comment only\n", false, 0, ""},
		{"---\n", false, 0, ""},
		{"a: 1\n---\n", true, 0, ""},
		{"a: 1\n---\nb: 2\n", false, 3, "only one YAML document is allowed; a second one (after ---) begins here"},
		{"a: 1\nb: [1, 2\nc: 3\n", false, 2, "not valid YAML: did not find expected ',' or ']'"},
		{"a: 1\n---\nb: [\n", false, 3, "not valid YAML: "},
	} {
		root, p := Parse([]byte(c.doc))
		if (root != nil) != c.root {
			t.Errorf("%q: root %v, want present=%v", c.doc, root, c.root)
		}
		switch {
		case c.msg == "" && p != nil:
			t.Errorf("%q: problem %+v", c.doc, p)
		case c.msg != "" && (p == nil || p.Line != c.line || !strings.HasPrefix(p.Msg, c.msg)):
			t.Errorf("%q: problem %+v, want line %d %q", c.doc, p, c.line, c.msg)
		}
	}
}

func TestParseByteSize(t *testing.T) {
	for s, want := range map[string]int64{"0": 0, "500MB": 500e6, "2 GiB": 2 << 30, "1.5KB": 1500, "12B": 12} {
		if got, err := ParseByteSize(s); err != nil || got != want {
			t.Errorf("%q = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"-1MB", "lots", "1e30TB"} {
		if _, err := ParseByteSize(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

// FuzzWalk: any input is either refused with a located problem or walked
// without panicking, every problem naming a line inside the file.
func FuzzWalk(f *testing.F) {
	f.Add([]byte("name: a\ncount: 3\ninner: {x: y}\ntags: [a, b]\ncodes: {1: a}\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("inner: &i {x: *i}\n"))
	f.Add([]byte("every: 99999999999999d\nquota: 9e99TB\n"))
	f.Add([]byte("a: 1\n---\nb: [\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// YAML breaks lines at CR, LF and CRLF (and, as yaml.v3 reads
		// it, at NEL, LS and PS).
		text := strings.NewReplacer("\r\n", "\n", "\r", "\n", "\u0085", "\n", "\u2028", "\n", "\u2029", "\n").Replace(string(data))
		lines := strings.Count(text, "\n") + 1
		root, p := Parse(data)
		if p != nil {
			if p.Line < 1 || p.Line > lines || p.Msg == "" {
				t.Fatalf("syntax problem %+v outside the file's %d lines", p, lines)
			}
			return
		}
		if root == nil {
			return
		}
		_, w := walk(t, string(data))
		for _, p := range w.Problems {
			if p.Line < 1 || p.Line > lines || p.Msg == "" {
				t.Fatalf("problem %+v outside the file's %d lines", p, lines)
			}
		}
	})
}

func TestProblemIn(t *testing.T) {
	for p, want := range map[Problem]string{
		{Line: 3, Path: "a.b", Msg: "bad"}:  "f.yaml:3: a.b: bad",
		{Path: "a", Msg: "is required"}:     "f.yaml: a: is required",
		{Line: 2, Msg: "not valid YAML: x"}: "f.yaml:2: not valid YAML: x",
	} {
		if got := p.In("f.yaml"); got != want {
			t.Errorf("%+v.In = %q, want %q", p, got, want)
		}
	}
}

// A mistake found after the walk is put on its key's line, or on the
// closest enclosing key's when the key is left out.
func TestFailAtfUsesTheKeysLine(t *testing.T) {
	_, w := walk(t, "name: a\ninner:\n  x: b\n")
	w.FailAtf("inner.x", "contradicts name")
	w.FailAtf("inner.y", "is required")
	w.FailAtf("absent", "is required")
	want := []Problem{{3, "inner.x", "contradicts name"}, {2, "inner.y", "is required"}, {0, "absent", "is required"}}
	for i, p := range w.Problems {
		if p != want[i] {
			t.Errorf("problem %d = %+v, want %+v", i, p, want[i])
		}
	}
}
