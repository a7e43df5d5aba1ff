package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sterigate/sterigate/protocol/verify"
)

// Error is a mistake in a configuration file. It names the file, the line,
// the key path and the offending value, so a biomedical engineer can fix
// the file without reading Go.
type Error struct {
	File string
	Line int
	Path string // e.g. "devices[0].poll_interval"
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Path != "" {
		b.WriteString(": ")
		b.WriteString(e.Path)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// decoder walks a yaml.Node tree by hand instead of yaml.Unmarshal, because
// the library's own errors name neither the key path nor, for unknown keys,
// the value; ours must name both.
type decoder struct {
	file  string
	errs  []error
	lines map[string]int // key path -> line, for Config.Line
}

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// field is one key a mapping accepts.
type field struct {
	key    string
	decode func(n *yaml.Node, path string)
}

// mapping decodes a YAML mapping; unknown or repeated keys are errors.
func (d *decoder) mapping(n *yaml.Node, path string, fields ...field) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		if isNull(n) {
			return
		}
		d.fail(n, path, "must be a mapping of keys to values, not %s", describe(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := join(path, k.Value)
		if seen[k.Value] {
			d.fail(k, p, "is given twice")
			continue
		}
		seen[k.Value] = true
		d.lines[p] = k.Line
		var f *field
		for j := range fields {
			if fields[j].key == k.Value {
				f = &fields[j]
				break
			}
		}
		if f == nil {
			known := make([]string, len(fields))
			for j, f := range fields {
				known[j] = f.key
			}
			d.fail(k, p, "unknown key (known keys here: %s)", strings.Join(known, ", "))
			continue
		}
		f.decode(v, p)
	}
}

func (d *decoder) sequence(n *yaml.Node, path string, each func(i int, n *yaml.Node, path string)) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, "must be a list, not %s", describe(n))
		return
	}
	for i, item := range n.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		d.lines[p] = item.Line
		each(i, item, p)
	}
}

func (d *decoder) scalar(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.fail(n, path, "must be a single value, not %s", describe(n))
		return "", false
	}
	return n.Value, true
}

func (d *decoder) str(dst *string) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		if s, ok := d.scalar(n, path); ok {
			*dst = s
		}
	}
}

func (d *decoder) strList(dst *[]string) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		*dst = nil
		d.sequence(n, path, func(_ int, item *yaml.Node, p string) {
			if s, ok := d.scalar(item, p); ok {
				*dst = append(*dst, s)
			}
		})
	}
}

func (d *decoder) integer(dst *int, lo, hi int) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		s, ok := d.scalar(n, path)
		if !ok {
			return
		}
		v, err := strconv.ParseInt(s, 0, 64)
		if err != nil {
			d.fail(n, path, "%q is not a whole number", s)
			return
		}
		if v < int64(lo) || v > int64(hi) {
			d.fail(n, path, "%d is out of range (%d to %d)", v, lo, hi)
			return
		}
		*dst = int(v)
	}
}

// number decodes a finite number above lo (exclusive) and at most hi.
func (d *decoder) number(dst *float64, lo, hi float64) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		s, ok := d.scalar(n, path)
		if !ok {
			return
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			d.fail(n, path, "%q is not a number", s)
			return
		}
		if v <= lo || v > hi {
			d.fail(n, path, "%s is out of range (above %g, at most %g)", s, lo, hi)
			return
		}
		*dst = v
	}
}

func (d *decoder) boolean(dst *bool) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		s, ok := d.scalar(n, path)
		if !ok {
			return
		}
		switch strings.ToLower(s) {
		case "true", "yes", "on":
			*dst = true
		case "false", "no", "off":
			*dst = false
		default:
			d.fail(n, path, "%q is not true or false", s)
		}
	}
}

func (d *decoder) duration(dst *time.Duration, min time.Duration) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		s, ok := d.scalar(n, path)
		if !ok {
			return
		}
		v, err := parseDuration(s)
		if err != nil {
			d.fail(n, path, "%q is not a duration (write e.g. 500ms, 1s, 2m, 72h, 3650d)", s)
			return
		}
		if v < min {
			d.fail(n, path, "%s is too short (at least %s)", s, min)
			return
		}
		*dst = v
	}
}

// parseDuration accepts Go durations plus a "d" (days) suffix, because
// retention is naturally said in days and years of days.
func parseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("bad days %q", s)
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	return time.ParseDuration(s)
}

func (d *decoder) byteSize(dst *int64) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		s, ok := d.scalar(n, path)
		if !ok {
			return
		}
		v, err := parseByteSize(s)
		if err != nil {
			d.fail(n, path, "%q is not a size (write e.g. 500MB, 2GB, 0 for no limit)", s)
			return
		}
		*dst = v
	}
}

func parseByteSize(s string) (int64, error) {
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
	if err != nil || f < 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return int64(f * float64(mult)), nil
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "this"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// criteria decodes a device's criteria: {program: {kind, set_point_c, …}}
// and checks each set on its own (verify.Params.Check), each problem on
// the line of its key.
func (d *decoder) criteria(dst *map[string]verify.Params) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		if n.Kind == yaml.AliasNode {
			n = n.Alias
		}
		if isNull(n) {
			return
		}
		if n.Kind != yaml.MappingNode {
			d.fail(n, path, "must be a mapping of program names to criteria, not %s", describe(n))
			return
		}
		*dst = map[string]verify.Params{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			if _, dup := (*dst)[k.Value]; dup {
				d.fail(k, p, "is given twice")
				continue
			}
			d.lines[p] = k.Line
			params := verify.Params{Values: map[string]float64{}}
			nodes := map[string]*yaml.Node{}
			fields := []field{{"kind", func(n *yaml.Node, kp string) {
				nodes["kind"] = n
				d.str(&params.Kind)(n, kp)
			}}}
			for _, key := range verify.ParamKeys() {
				fields = append(fields, field{key, func(n *yaml.Node, kp string) {
					nodes[key] = n
					var x float64
					if s, ok := d.scalar(n, kp); ok {
						f, err := strconv.ParseFloat(s, 64)
						if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
							d.fail(n, kp, "%q is not a number", s)
							return
						}
						x = f
						params.Values[key] = x
					}
				}})
			}
			before := len(d.errs)
			d.mapping(v, p, fields...)
			if len(d.errs) > before {
				continue
			}
			if v.Kind != yaml.MappingNode && !(v.Kind == yaml.AliasNode && v.Alias != nil && v.Alias.Kind == yaml.MappingNode) {
				d.fail(v, p, "must be a mapping of criteria keys to values (kind, %s), not %s", strings.Join(verify.ParamKeys(), ", "), describe(v))
				continue
			}
			for _, pe := range verify.ParamErrors(params.Check()) {
				at := k
				if n, ok := nodes[pe.Key]; ok {
					at = n
				}
				d.fail(at, join(p, pe.Key), "%s", pe.Msg)
			}
			(*dst)[k.Value] = params
		}
	}
}
