package profile

import (
	"embed"
	"sort"
	"strings"
)

// builtinFiles holds the profiles shipped inside the binary. They are YAML,
// exactly like a user's file, so a user can print one and start from it.
//
//go:embed builtin/*.yaml
var builtinFiles embed.FS

// BuiltinNames lists the built-in profiles, sorted.
func BuiltinNames() []string {
	entries, err := builtinFiles.ReadDir("builtin")
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	sort.Strings(names)
	return names
}

// BuiltinSource returns the YAML text of a built-in profile, for users to
// copy and adapt.
func BuiltinSource(name string) ([]byte, bool) {
	data, err := builtinFiles.ReadFile("builtin/" + name + ".yaml")
	if err != nil {
		return nil, false
	}
	return data, true
}

// Builtin returns the built-in profile called name. Each call parses afresh,
// so callers never share mutable state.
func Builtin(name string) (*Profile, bool) {
	data, ok := BuiltinSource(name)
	if !ok {
		return nil, false
	}
	p, err := Parse("builtin:"+name, data)
	if err != nil {
		// A broken built-in profile is a build defect; TestBuiltinProfilesParse catches it.
		return nil, false
	}
	return p, true
}
