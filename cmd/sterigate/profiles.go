package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/sterigate/sterigate/drivers/printer"
	"github.com/sterigate/sterigate/drivers/profile"
)

// cmdProfiles lists the built-in register-map profiles and printout
// templates and prints one of them, the usual starting point for
// describing a new sterilizer (docs/profiles.md, docs/printer.md).
func cmdProfiles(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("profiles", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sterigate profiles            list built-in profiles and templates\n       sterigate profiles show NAME  print one as YAML, to copy and adapt")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() == 0:
		fmt.Fprintln(stdout, "Modbus register-map profiles (devices[].profile):")
		for _, name := range profile.BuiltinNames() {
			p, _ := profile.Builtin(name)
			fmt.Fprintf(stdout, "  %-16s %s\n", name, p.Description)
		}
		fmt.Fprintln(stdout, "Printer templates (devices[].template):")
		for _, name := range printer.BuiltinTemplateNames() {
			t, _ := printer.BuiltinTemplate(name)
			fmt.Fprintf(stdout, "  %-16s %s mode\n", name, t.Mode())
		}
		fmt.Fprintln(stdout, "\n'sterigate profiles show NAME' prints one; 'sterigate check --config FILE' validates your own.")
		return nil
	case fs.NArg() == 2 && fs.Arg(0) == "show":
		name := fs.Arg(1)
		if src, ok := profile.BuiltinSource(name); ok {
			_, err := stdout.Write(src)
			return err
		}
		if src, ok := printer.BuiltinTemplateSource(name); ok {
			_, err := stdout.Write(src)
			return err
		}
		return usageError{fmt.Sprintf("profiles: %q is not a built-in profile (%s) or template (%s)", name,
			strings.Join(profile.BuiltinNames(), ", "), strings.Join(printer.BuiltinTemplateNames(), ", "))}
	}
	fs.Usage()
	return usageError{"profiles: expected no argument or 'show NAME'"}
}
