package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/sterigate/sterigate/gateway/config"
	"github.com/sterigate/sterigate/gateway/mqttpub"
	"github.com/sterigate/sterigate/protocol"
)

// discard is a sink and state store that keeps nothing; 'check' builds
// drivers with it but never runs them.
type discard struct{}

func (discard) Cycle(context.Context, protocol.CycleRecord) error   { return nil }
func (discard) Telemetry(context.Context, protocol.Telemetry) error { return nil }
func (discard) Event(context.Context, protocol.Event) error         { return nil }
func (discard) LoadState(context.Context, string) ([]byte, error)   { return nil, nil }
func (discard) SaveState(context.Context, string, []byte) error     { return nil }

func cmdCheck(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file to check (required)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sterigate check --config FILE\n\nValidates the config and every profile and template it names; lists every mistake. Flags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *configPath == "" {
		fs.Usage()
		return usageError{"check: --config is required"}
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		return err
	}
	var problems []error
	for i, dev := range cfg.Devices {
		if _, err := resolveDeviceFiles(cfg, dev); err != nil {
			problems = append(problems, fmt.Errorf("devices[%d] (%s): %w", i, dev.ID, err))
		}
	}
	if len(problems) > 0 {
		return errors.Join(problems...)
	}
	// Build every link and the publisher as 'run' would, without starting
	// anything, so that what only a driver or the MQTT client checks is
	// reported here too.
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if _, err := buildLinks(cfg, discard{}, quiet); err != nil {
		return err
	}
	if err := mqttpub.CheckOptions(publisherOptions(cfg, nil, quiet)); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok: gateway %s at %s, %d device(s), %d broker(s)\n",
		*configPath, cfg.Gateway.ID, cfg.Gateway.Site, len(cfg.Devices), len(cfg.MQTT.Brokers))
	return nil
}
