package config

import (
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/sterigate/sterigate/protocol/strictyaml"
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
	return strictyaml.Problem{Line: e.Line, Path: e.Path, Msg: e.Msg}.In(e.File)
}

// decoder reads a config's node tree; every mistake becomes a Problem of
// its Walker, turned into an Error by parse.
type decoder struct {
	*strictyaml.Walker
}

// field is one key a mapping accepts.
type field = strictyaml.Field

// criteria decodes a device's criteria: {program: {kind, set_point_c, …}}
// and checks each set on its own (verify.Params.Check), each problem on
// the line of its key.
func (d *decoder) criteria(dst *map[string]verify.Params) strictyaml.Decode {
	return func(n *yaml.Node, path string) {
		entries, ok := d.Entries(n, path, nil)
		if !ok || strictyaml.IsNull(strictyaml.Deref(n)) {
			return
		}
		*dst = map[string]verify.Params{}
		for _, e := range entries {
			p := strictyaml.Join(path, e.Key)
			params := verify.Params{Values: map[string]float64{}}
			nodes := map[string]*yaml.Node{}
			fields := []field{{Key: "kind", Decode: func(n *yaml.Node, kp string) {
				nodes["kind"] = n
				d.SetStr(&params.Kind)(n, kp)
			}}}
			for _, key := range verify.ParamKeys() {
				fields = append(fields, field{Key: key, Decode: func(n *yaml.Node, kp string) {
					nodes[key] = n
					if x, ok := d.Number(n, kp); ok {
						params.Values[key] = x
					}
				}})
			}
			before := len(d.Problems)
			d.Mapping(e.Value, p, fields...)
			if len(d.Problems) > before {
				continue
			}
			if e.Value.Kind != yaml.MappingNode {
				d.Failf(e.Value, p, "must be a mapping of criteria keys to values (kind, %s), not %s", strings.Join(verify.ParamKeys(), ", "), strictyaml.Describe(e.Value))
				continue
			}
			for _, pe := range verify.ParamErrors(params.Check()) {
				at := e.KeyNode
				if n, ok := nodes[pe.Key]; ok {
					at = n
				}
				d.Failf(at, strictyaml.Join(p, pe.Key), "%s", pe.Msg)
			}
			(*dst)[e.Key] = params
		}
	}
}
