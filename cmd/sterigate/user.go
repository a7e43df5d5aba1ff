package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/term"

	"github.com/sterigate/sterigate/gateway/config"
	"github.com/sterigate/sterigate/gateway/console"
)

// cmdUser manages the console's local accounts in the users file the
// config names (gateway.console.users_file).
func cmdUser(_ context.Context, args []string, stdout, stderr io.Writer) error {
	usage := func() {
		fmt.Fprintln(stderr, "usage: sterigate user add --config FILE [--role operator|admin] [--password-stdin] [--replace] NAME\n"+
			"       sterigate user remove --config FILE NAME\n"+
			"       sterigate user list --config FILE\n\n"+
			"Manages the console's accounts in the file gateway.console.users_file names. The password is\n"+
			"asked twice on the terminal (or read from the first line of standard input with --password-stdin)\n"+
			"and stored as a bcrypt hash, never in clear; the file is written with mode 0600. An operator records\n"+
			"release decisions; an admin can also replace a final one. The running gateway reads the file at each\n"+
			"login: no restart needed.")
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		usage()
		if len(args) == 0 {
			return usageError{"user: say add, remove or list"}
		}
		return nil
	}
	sub := args[0]
	fs := flag.NewFlagSet("user "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = usage
	configPath := fs.String("config", "", "configuration file (required)")
	role := fs.String("role", console.RoleOperator, "operator or admin (add)")
	fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input (add)")
	replace := fs.Bool("replace", false, "change the password and role of an existing account (add)")
	// Flags may come before or after the name.
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	var names []string
	for fs.NArg() > 0 {
		names = append(names, fs.Arg(0))
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return err
		}
	}
	if *configPath == "" {
		return usageError{"user: --config is required"}
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		return err
	}
	path := cfg.Gateway.ConsoleAccess.UsersFile
	if path == "" {
		return fmt.Errorf("user: %s sets no gateway.console.users_file: add it (e.g. users_file: console-users) first", *configPath)
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(cfg.File), path)
	}
	switch sub {
	case "add":
		if len(names) != 1 {
			return usageError{"user add: give exactly one NAME"}
		}
		password, err := readNewPassword(*fromStdin, names[0], stderr)
		if err != nil {
			return err
		}
		if err := console.AddUser(path, names[0], *role, password, *replace); err != nil {
			return fmt.Errorf("user add: %w", err)
		}
		fmt.Fprintf(stdout, "%s (%s) saved in %s\n", names[0], *role, path)
	case "remove":
		if len(names) != 1 {
			return usageError{"user remove: give exactly one NAME"}
		}
		if err := console.RemoveUser(path, names[0]); err != nil {
			return fmt.Errorf("user remove: %w", err)
		}
		fmt.Fprintf(stdout, "%s removed from %s (sessions already open end within the idle time)\n", names[0], path)
	case "list":
		users, err := console.ReadUsers(path)
		if err != nil {
			return fmt.Errorf("user list: %w", err)
		}
		for _, u := range users {
			fmt.Fprintf(stdout, "%s %s\n", u.Name, u.Role)
		}
	default:
		usage()
		return usageError{fmt.Sprintf("user: unknown subcommand %q (add, remove, list)", sub)}
	}
	return nil
}

// readNewPassword reads the new password: the first line of standard
// input, or twice from the terminal without echo.
func readNewPassword(fromStdin bool, name string, stderr io.Writer) ([]byte, error) {
	if fromStdin {
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("user add: read the password: %w", err)
		}
		return []byte(strings.TrimRight(line, "\r\n")), nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return nil, errors.New("user add: standard input is not a terminal: use --password-stdin")
	}
	fmt.Fprintf(stderr, "Password for %s: ", name)
	first, err := term.ReadPassword(fd)
	fmt.Fprintln(stderr)
	if err != nil {
		return nil, fmt.Errorf("user add: read the password: %w", err)
	}
	fmt.Fprint(stderr, "Again: ")
	second, err := term.ReadPassword(fd)
	fmt.Fprintln(stderr)
	if err != nil {
		return nil, fmt.Errorf("user add: read the password: %w", err)
	}
	if string(first) != string(second) {
		return nil, errors.New("user add: the two passwords differ; nothing was saved")
	}
	return first, nil
}
