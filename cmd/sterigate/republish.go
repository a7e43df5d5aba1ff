package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sterigate/sterigate/gateway/journal"
	"github.com/sterigate/sterigate/gateway/mqttpub"
)

// cmdRepublish is 'sterigate republish': it sends journaled entries of a
// device again, marked as replays, over a connection of its own, for a
// consumer that lost them. It reads the journal read-only and changes
// nothing in it, so it runs while the gateway runs (docs/mqtt.md).
func cmdRepublish(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("republish", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "the gateway's configuration file (required): its broker, credentials, topics and data_dir")
	device := fs.String("device", "", "the device whose entries to send again (required)")
	since := fs.String("since", "", "the first entry to send: a seq (e.g. 5120) or a time, RFC 3339 or YYYY-MM-DD (required)")
	kinds := fs.String("kinds", "cycle,event,telemetry", "which entries: a comma-separated list of cycle, event, telemetry")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sterigate republish --config FILE --device D --since SEQ|TIME [--kinds cycle,event]\n\n"+
			"Publishes the device's journaled entries from --since on again, byte for byte with the replay marker, for a\n"+
			"consumer that lost them. Uses its own MQTT connection (client id <client_id>-republish) and may run beside\n"+
			"the gateway. Prints how many the broker acknowledged and how many came back. Flags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *configPath == "" || *device == "" || *since == "" {
		fs.Usage()
		return usageError{"republish: --config, --device and --since are required"}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("republish: unexpected argument %q", fs.Arg(0))}
	}
	filter := journal.EntryFilter{Device: *device}
	if n, err := strconv.ParseUint(*since, 10, 64); err == nil {
		filter.SinceSeq = n
	} else if t, err := parseSince(*since); err == nil {
		filter.Since = t
	} else {
		return usageError{fmt.Sprintf("republish: --since %q is neither a seq nor a time (RFC 3339, or YYYY-MM-DD)", *since)}
	}
	for _, k := range strings.Split(*kinds, ",") {
		switch kind := journal.Kind(strings.TrimSpace(k)); kind {
		case journal.KindCycle, journal.KindEvent, journal.KindTelemetry:
			filter.Kinds = append(filter.Kinds, kind)
		default:
			return usageError{fmt.Sprintf("republish: --kinds: %q is not cycle, event or telemetry", k)}
		}
	}
	cfg, err := loadAndValidate(*configPath, stderr)
	if err != nil {
		return err
	}
	log, _ := newLogger(stderr, "warn", "text")
	path := filepath.Join(cfg.Gateway.DataDir, "journal.db")
	rep, err := mqttpub.Republish(ctx, publisherOptions(cfg, nil, log, nil), func(send func(journal.Entry) error) error {
		return journal.Range(ctx, path, filter, send)
	})
	fmt.Fprintf(stdout, "%s: %d entries of %s published again to %s, %d acknowledged; %d cycle records and events came back",
		path, rep.Published, *device, rep.Broker, rep.Acknowledged, rep.Confirmed)
	if len(rep.Unconfirmed) > 0 {
		fmt.Fprintf(stdout, ", %d did not: %s", len(rep.Unconfirmed), strings.Join(rep.Unconfirmed, " "))
	}
	fmt.Fprintln(stdout)
	if err != nil {
		return fmt.Errorf("republish: %w", err)
	}
	if len(rep.Unconfirmed) > 0 {
		return reportedError{"republish: some entries did not come back (check the broker's ACL for the gateway's user)"}
	}
	return nil
}

func parseSince(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.ParseInLocation("2006-01-02", s, time.Local)
}
