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
	"sort"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// command is one subcommand; each lives in its own file.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() map[string]command {
	return map[string]command{
		"run":      {"run the gateway daemon from a config file", cmdRun},
		"demo":     {"simulator + embedded MQTT broker + gateway, nothing to install", cmdDemo},
		"sim":      {"run the autoclave simulator (Modbus TCP/RTU, printer port)", cmdSim},
		"check":    {"validate a config file and every profile and template it names", cmdCheck},
		"ports":    {"list serial ports with USB VID:PID, serial number and product", cmdPorts},
		"probe":    {"read registers from a Modbus device and print raw and decoded values", cmdProbe},
		"learn":    {"draft a profile for an undocumented Modbus sterilizer by watching one cycle", cmdLearn},
		"tap":      {"show a printer stream live, raw and parsed through a template", cmdTap},
		"profiles": {"list the built-in profiles and printout templates, or print one", cmdProfiles},
		"version":  {"print the version", cmdVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "sterigate:", err)
		}
		os.Exit(exitCode(err))
	}
}

// usageError marks a mistake on the command line (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func exitCode(err error) int {
	var u usageError
	if errors.As(err, &u) || errors.Is(err, flag.ErrHelp) {
		return 2
	}
	return 1
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmds := commands()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout, cmds)
		if len(args) == 0 {
			return usageError{"no command given"}
		}
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
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-9s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'sterigate <command> -h' for a command's flags.")
}

func cmdVersion(_ context.Context, _ []string, stdout, _ io.Writer) error {
	fmt.Fprintln(stdout, "sterigate", version)
	return nil
}
