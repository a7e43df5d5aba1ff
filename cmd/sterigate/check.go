package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/sterigate/sterigate/gateway/config"
)

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
	fmt.Fprintf(stdout, "%s: ok: gateway %s at %s, %d device(s), %d broker(s)\n",
		*configPath, cfg.Gateway.ID, cfg.Gateway.Site, len(cfg.Devices), len(cfg.MQTT.Brokers))
	return nil
}
