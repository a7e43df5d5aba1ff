// Command sterigate is the sterilizer gateway: it polls steam sterilizers
// over Modbus and RS-232, journals every cycle record durably and publishes
// it over MQTT. It also carries the simulator, the demo and the
// commissioning tools, so one static binary is all a site installs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sort"
	"syscall"
)

// version, when set at build time with -ldflags "-X main.version=...",
// overrides the module version the Go toolchain records in the binary.
var version = ""

// build identifies the running binary.
type build struct {
	version   string // module version, or the -X override, or "dev"
	revision  string // VCS revision, "" when the build did not record one
	modified  bool   // built from a work tree with uncommitted changes
	vcsTime   string
	goVersion string
}

// readBuild reads what the toolchain recorded (runtime/debug.ReadBuildInfo):
// a binary built from a git checkout knows its commit without any flag.
func readBuild() build {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		info = nil
	}
	return buildFrom(info, version)
}

// buildFrom is readBuild with what it reads passed in; override is the
// -X main.version value.
func buildFrom(info *debug.BuildInfo, override string) build {
	b := build{version: override, goVersion: runtime.Version()}
	if info != nil {
		if b.version == "" && info.Main.Version != "(devel)" {
			b.version = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				b.revision = s.Value
			case "vcs.modified":
				b.modified = s.Value == "true"
			case "vcs.time":
				b.vcsTime = s.Value
			}
		}
	}
	if b.version == "" {
		b.version = "dev"
	}
	return b
}

// String is what 'sterigate version' prints.
func (b build) String() string {
	s := "sterigate " + b.version
	if b.revision != "" {
		s += "\nrevision " + b.revision
		if b.modified {
			s += " (with uncommitted changes)"
		}
		if b.vcsTime != "" {
			s += ", committed " + b.vcsTime
		}
	}
	return s + "\nbuilt with " + b.goVersion
}

// command is one subcommand; each lives in its own file.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() map[string]command {
	return map[string]command{
		"run":          {"run the gateway daemon from a config file", cmdRun},
		"demo":         {"simulator + embedded MQTT broker + gateway, nothing to install", cmdDemo},
		"sim":          {"run the autoclave simulator (Modbus TCP/RTU, printer port)", cmdSim},
		"check":        {"validate a config file and every profile and template it names", cmdCheck},
		"ports":        {"list serial ports with USB VID:PID, serial number and product", cmdPorts},
		"probe":        {"read registers from a Modbus device and print raw and decoded values", cmdProbe},
		"learn":        {"draft a profile for an undocumented Modbus sterilizer by watching one cycle", cmdLearn},
		"tap":          {"show a printer stream live, raw and parsed through a template", cmdTap},
		"profiles":     {"list the built-in profiles and printout templates, or print one", cmdProfiles},
		"verify-cycle": {"judge cycle records again (from mosquitto_sub) and compare verdicts", cmdVerifyCycle},
		"user":         {"add, remove or list the console's accounts (release decisions)", cmdUser},
		"verify":       {"check a journal or an MQTT capture: sequence, hash chain and signatures", cmdVerify},
		"export":       {"write a device's records from a journal, with their signatures (JSON lines or CSV)", cmdExport},
		"key":          {"show or rotate the gateway's signing key", cmdKey},
		"journal":      {"check a journal, salvage a damaged one, or start fresh over a file that is not one", cmdJournal},
		"republish":    {"send a device's journaled entries again for a consumer that lost them", cmdRepublish},
		"archive":      {"keep every site's records once in PostgreSQL, check them and send receipts; or query them", cmdArchive},
		"version":      {"print the version", cmdVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(finish(err, os.Stderr))
}

// finish reports err the way every command ends and returns the exit
// status: 0 for success and for a help request, 2 for a mistake on the
// command line, 1 for anything else.
func finish(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var quiet reportedError
	if !errors.As(err, &quiet) || quiet.summary != "" {
		fmt.Fprintln(stderr, "sterigate:", err)
	}
	return exitCode(err)
}

// usageError marks a mistake on the command line (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// reportedError is a failure whose details the command already printed
// (check's list of problems); summary, when set, is printed last.
type reportedError struct{ summary string }

func (e reportedError) Error() string { return e.summary }

func exitCode(err error) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmds := commands()
	if len(args) == 0 {
		usage(stderr, cmds)
		return usageError{"no command given"}
	}
	switch args[0] {
	case "-h", "-help", "--help":
		usage(stdout, cmds)
		return nil
	case "help":
		// "help run" is "run -h".
		if len(args) > 1 {
			if c, ok := cmds[args[1]]; ok {
				return c.run(ctx, []string{"-h"}, stdout, stderr)
			}
			usage(stderr, cmds)
			return usageError{fmt.Sprintf("help: unknown command %q", args[1])}
		}
		usage(stdout, cmds)
		return nil
	}
	c, ok := cmds[args[0]]
	if !ok {
		usage(stderr, cmds)
		return usageError{fmt.Sprintf("unknown command %q", args[0])}
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: sterigate <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(cmds))
	width := 0
	for n := range cmds {
		names = append(names, n)
		width = max(width, len(n))
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-*s %s\n", width, n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'sterigate <command> -h' (or 'sterigate help <command>') for a command's flags.\nEvery command and flag: docs/commands.md.")
}

func cmdVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sterigate version\n\nPrints the version, the VCS revision the binary was built from and the Go version.")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("version: unexpected argument %q", fs.Arg(0))}
	}
	fmt.Fprintln(stdout, readBuild())
	return nil
}
