package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/sterigate/sterigate/gateway/datadir"
	"github.com/sterigate/sterigate/gateway/journal"
)

// cmdJournal is 'sterigate journal check|salvage|start-fresh': the tools
// for a journal that is, or may be, damaged (docs/journal.md).
func cmdJournal(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := func() {
		fmt.Fprintln(stderr, `usage: sterigate journal check --journal FILE
       sterigate journal salvage --journal NEW OLD
       sterigate journal start-fresh --journal FILE

check        checks a journal without writing to it (it may run beside the gateway): its
             write-ahead log, SQLite's integrity_check, every entry against its hash, every
             device's chain. Exits 1 when anything is damaged.
salvage      copies every entry of the damaged journal OLD that still verifies into the
             journal NEW (the one that replaced it), with its id, seq and payload; the
             gateway publishes those it had not delivered again, marked as replays. OLD is
             not changed. It may run beside the gateway.
start-fresh  moves a file that is not a journal (empty, or foreign) aside, keeping it, and
             creates a new journal in its place. Refuses a journal.`)
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		usage()
		if len(args) == 0 {
			return usageError{"journal: give check, salvage or start-fresh"}
		}
		return nil
	}
	sub := args[0]
	fs := flag.NewFlagSet("journal "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("journal", "", "the journal file (gateway.data_dir/journal.db)")
	fs.Usage = func() { usage(); fmt.Fprintln(stderr, "Flags:"); fs.PrintDefaults() }
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *path == "" {
		fs.Usage()
		return usageError{"journal " + sub + ": --journal is required"}
	}
	switch sub {
	case "check":
		if fs.NArg() > 0 {
			return usageError{fmt.Sprintf("journal check: unexpected argument %q", fs.Arg(0))}
		}
		rep, err := journal.Check(ctx, *path)
		if err != nil {
			return fmt.Errorf("journal check: %w", err)
		}
		fmt.Fprint(stdout, rep)
		if !rep.OK() {
			return reportedError{"journal check: " + *path + " is damaged"}
		}
		return nil
	case "salvage":
		if fs.NArg() != 1 {
			fs.Usage()
			return usageError{fmt.Sprintf("journal salvage: give the damaged journal OLD (got %d arguments)", fs.NArg())}
		}
		rep, err := journal.Salvage(ctx, *path, fs.Arg(0))
		for _, d := range rep.Damaged {
			fmt.Fprintf(stdout, "damaged, not salvaged: %s\n", d)
		}
		if rep.Read > 0 || err == nil {
			fmt.Fprintln(stdout, rep)
		}
		if err != nil {
			return fmt.Errorf("journal salvage: %w", err)
		}
		return nil
	case "start-fresh":
		if fs.NArg() > 0 {
			return usageError{fmt.Sprintf("journal start-fresh: unexpected argument %q", fs.Arg(0))}
		}
		// Never under a running gateway.
		lock, err := datadir.Acquire(filepath.Dir(*path))
		if err != nil {
			return err
		}
		defer lock.Release()
		kept, err := journal.StartFresh(ctx, *path)
		if err != nil {
			return fmt.Errorf("journal start-fresh: %w", err)
		}
		if kept != "" {
			fmt.Fprintf(stdout, "kept the file that was not a journal as %s\n", kept)
		}
		fmt.Fprintf(stdout, "new journal: %s\n", *path)
		return nil
	}
	usage()
	return usageError{fmt.Sprintf("journal: unknown subcommand %q (check, salvage, start-fresh)", strings.TrimSpace(sub))}
}
