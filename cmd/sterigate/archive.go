package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/sterigate/sterigate/gateway/archive"
	"github.com/sterigate/sterigate/gateway/config"
	"github.com/sterigate/sterigate/gateway/mqttpub"
)

func cmdArchive(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "query" {
		return cmdArchiveQuery(ctx, args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("archive", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "archive configuration file (required; see archive.example.yaml)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "text or json")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sterigate archive --config FILE\n       sterigate archive query --config FILE --site S [--device D] [--from T] [--to T] [--verdict V] [--json]\n\n"+
			"Subscribes to every site's cycle records, events and telemetry and keeps each once in PostgreSQL,\n"+
			"checking every device's sequence, hash chain and signatures; publishes receipts to the gateways and\n"+
			"alarms for gaps and conflicts (docs/fleet.md). 'query' prints stored cycle records. Flags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *configPath == "" {
		fs.Usage()
		return usageError{"archive: --config is required"}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("archive: unexpected argument %q", fs.Arg(0))}
	}
	log, err := newLogger(stderr, *logLevel, *logFormat)
	if err != nil {
		return usageError{"archive: " + err.Error()}
	}
	cfg, url, err := loadArchiveConfig(*configPath, stderr)
	if err != nil {
		return err
	}
	conn, err := mqttpub.NewConnector(archiveConnectorOptions(cfg, log))
	if err != nil {
		return err
	}
	store, err := openArchiveStore(ctx, url, cfg, log)
	if err != nil || store == nil {
		return err
	}
	defer store.Close()
	a, err := archive.New(archive.Options{
		ID: cfg.Archive.ID, ClientID: cfg.MQTT.ClientID, Group: cfg.Archive.Group, TopicRoot: cfg.MQTT.TopicRoot,
		Connector: conn, BatchSize: cfg.Archive.BatchSize, GapAlarmAfter: cfg.Archive.GapAlarmAfter, Logger: log,
	}, store)
	if err != nil {
		return err
	}
	log.Info("archive starting", "id", cfg.Archive.ID, "group", cfg.Archive.Group, "brokers", cfg.MQTT.Brokers, "telemetry", cfg.Archive.Telemetry)
	return a.Run(ctx)
}

// openArchiveStore opens the database, waiting for it while it cannot be
// reached (an archive started with, or before, its database). A mistake
// that waiting cannot cure (a schema newer than this sterigate) ends it.
// It returns nil, nil when ctx ends first.
func openArchiveStore(ctx context.Context, url string, cfg *config.ArchiveConfig, log *slog.Logger) (*archive.Store, error) {
	for attempt := 0; ; attempt++ {
		store, err := archive.Open(ctx, url, archive.StoreOptions{Telemetry: cfg.Archive.Telemetry, ApplicationName: cfg.MQTT.ClientID})
		if err == nil {
			return store, nil
		}
		if errors.Is(err, archive.ErrSchemaTooNew) {
			return nil, err
		}
		delay := min(250*time.Millisecond<<min(attempt, 5), 10*time.Second)
		log.Warn("archive: PostgreSQL not ready; trying again", "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(delay):
		}
	}
}

// archiveConnectorOptions are the MQTT settings of an archive; the
// publisher's checks want a gateway and a site, which an archive has not:
// its id stands for both.
func archiveConnectorOptions(cfg *config.ArchiveConfig, log *slog.Logger) mqttpub.Options {
	m := cfg.MQTT
	id := cfg.Archive.ID
	if id == "" {
		id = "archive"
	}
	return mqttpub.Options{
		Brokers: m.Brokers, ClientID: m.ClientID, Gateway: id, Site: id, TopicRoot: m.TopicRoot,
		Username: m.Username, PasswordFile: m.PasswordFile, PasswordEnv: m.PasswordEnv,
		CAFile: m.TLS.CAFile, CertFile: m.TLS.CertFile, KeyFile: m.TLS.KeyFile, KeepAlive: m.KeepAlive, Logger: log,
	}
}

// loadArchiveConfig loads an archive configuration and checks its secret
// and TLS files, printing every problem with its line; it returns the
// configuration and the PostgreSQL URL.
func loadArchiveConfig(path string, stderr io.Writer) (*config.ArchiveConfig, string, error) {
	cfg, err := config.LoadArchive(path)
	if cfg == nil {
		return nil, "", err
	}
	if err := reportProblems(path, validateArchive(cfg, err), stderr); err != nil {
		return nil, "", err
	}
	url, err := cfg.PostgresURL()
	return cfg, url, err
}

// validateArchive lists the config's own mistakes and the files it names
// that cannot be used (password, TLS, the PostgreSQL URL file), in file
// order.
func validateArchive(cfg *config.ArchiveConfig, cfgErr error) []error {
	var l problemList
	l.add(cfgErr)
	l.add(mqttFileProblems(mqttpub.CheckFiles(archiveConnectorOptions(cfg, slog.New(slog.DiscardHandler))), cfg.Errorf)...)
	if cfg.Postgres.URLFile != "" {
		if _, err := cfg.PostgresURL(); err != nil {
			l.add(err)
		}
	}
	return l.sorted()
}

// checkArchiveFile is 'sterigate check' for an archive configuration.
func checkArchiveFile(path string, stdout, stderr io.Writer) error {
	cfg, _, err := loadArchiveConfig(path, stderr)
	if err != nil {
		return err
	}
	if err := mqttpub.CheckOptions(archiveConnectorOptions(cfg, slog.New(slog.DiscardHandler))); err != nil {
		return err
	}
	telemetry := "not kept (chain only)"
	if cfg.Archive.Telemetry {
		telemetry = "kept"
	}
	fmt.Fprintf(stdout, "%s: ok: archive %s in group %s, %d broker(s), telemetry %s\n",
		path, cfg.Archive.ID, cfg.Archive.Group, len(cfg.MQTT.Brokers), telemetry)
	return nil
}

func cmdArchiveQuery(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("archive query", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "archive configuration file (required)")
	site := fs.String("site", "", "site (required)")
	device := fs.String("device", "", "device; empty: every device of the site")
	from := fs.String("from", "", "cycles started at or after this time (RFC 3339 or YYYY-MM-DD)")
	to := fs.String("to", "", "cycles started before this time (RFC 3339 or YYYY-MM-DD)")
	verdict := fs.String("verdict", "", "only this verdict of sterigate's own check (pass, fail, indeterminate, none)")
	asJSON := fs.Bool("json", false, "print one JSON object per record (the stored record, with its stored_at)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sterigate archive query --config FILE --site S [--device D] [--from T] [--to T] [--verdict V] [--json]\n\n"+
			"Prints the cycle records the archive holds, oldest first: a table, or JSON lines. Flags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *configPath == "" || *site == "" {
		fs.Usage()
		return usageError{"archive query: --config and --site are required"}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("archive query: unexpected argument %q", fs.Arg(0))}
	}
	q := archive.Query{Site: *site, Device: *device, Verdict: *verdict}
	var err error
	if q.From, err = parseWhen("archive query", "--from", *from); err != nil {
		return err
	}
	if q.To, err = parseWhen("archive query", "--to", *to); err != nil {
		return err
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.To.After(q.From) {
		return usageError{fmt.Sprintf("archive query: --to %s is not after --from %s", *to, *from)}
	}
	_, url, err := loadArchiveConfig(*configPath, stderr)
	if err != nil {
		return err
	}
	db, err := archive.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer db.Close(context.Background())
	if *asJSON {
		return archive.QueryCycles(ctx, db, q, func(c archive.CycleRow) error {
			_, err := stdout.Write(append(c.Record, '\n'))
			return err
		})
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STARTED\tDEVICE\tCYCLE\tPROGRAM\tDEVICE RESULT\tVERDICT\tCOMPLETE\tID")
	n := 0
	err = archive.QueryCycles(ctx, db, q, func(c archive.CycleRow) error {
		n++
		started := "—"
		if c.StartedAt != nil {
			started = c.StartedAt.UTC().Format(time.RFC3339)
		}
		v := "—"
		if c.Verdict != nil {
			v = *c.Verdict
		}
		_, err := fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%t\t%s\n", started, c.Device, c.Cycle, c.Program, c.DeviceResult, v, c.Complete, c.ID)
		return err
	})
	if err != nil {
		return err
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "%d cycle record(s)\n", n)
	return nil
}
