package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"

	"github.com/sterigate/sterigate/gateway/config"
	"github.com/sterigate/sterigate/gateway/datadir"
	"github.com/sterigate/sterigate/gateway/keystore"
	"github.com/sterigate/sterigate/gateway/mqttpub"
)

func cmdCheck(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file to check (required)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sterigate check --config FILE\n\n"+
			"Validates the config and every profile, template, password, TLS and signing key file it names, and\n"+
			"that its data_dir can be created; lists every mistake with file and line, and changes nothing. Flags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *configPath == "" {
		fs.Usage()
		return usageError{"check: --config is required"}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("check: unexpected argument %q", fs.Arg(0))}
	}
	if data, err := os.ReadFile(*configPath); err == nil && config.FileKind(data) == config.KindArchive {
		return checkArchiveFile(*configPath, stdout, stderr)
	}
	cfg, err := loadAndValidate(*configPath, stderr)
	if err != nil {
		return err
	}
	// Build every link and the publisher's settings as 'run' would,
	// without starting anything, so that what only a driver or the MQTT
	// client checks is reported here too.
	quiet := slog.New(slog.DiscardHandler)
	// The links get a sink that keeps what it is given in memory: they are
	// built, never run.
	if _, err := buildLinks(cfg, &captureSink{}, quiet); err != nil {
		return err
	}
	if err := mqttpub.CheckOptions(publisherOptions(cfg, nil, quiet, nil)); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok: gateway %s at %s, %d device(s), %d broker(s)\n",
		*configPath, cfg.Gateway.ID, cfg.Gateway.Site, len(cfg.Devices), len(cfg.MQTT.Brokers))
	// What each program will be judged by (docs/verification.md), for
	// commissioning.
	files, criteria, err := resolveDevices(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "criteria of sterigate's own check, per device and program:")
	for _, dev := range cfg.Devices {
		for _, line := range criteriaLines(files[dev.ID].profile, criteria[dev.ID]) {
			fmt.Fprintf(stdout, "  %s %s\n", dev.ID, line)
		}
	}
	return nil
}

// loadAndValidate loads the config at path and checks everything 'run'
// needs before it touches anything (see validate). It prints every
// problem to stderr, one per line, and returns a reportedError when there
// are any.
func loadAndValidate(path string, stderr io.Writer) (*config.Config, error) {
	cfg, err := config.LoadPartial(path)
	if cfg == nil {
		return nil, err
	}
	if err := reportProblems(path, validate(cfg, err), stderr); err != nil {
		return nil, err
	}
	return cfg, nil
}

// reportProblems prints problems to stderr, one per line, and returns the
// reportedError that ends the command; nil when there are none.
func reportProblems(path string, problems []error, stderr io.Writer) error {
	if len(problems) == 0 {
		return nil
	}
	for _, p := range problems {
		fmt.Fprintln(stderr, p)
	}
	plural := "s"
	if len(problems) == 1 {
		plural = ""
	}
	return reportedError{fmt.Sprintf("%d problem%s in %s", len(problems), plural, path)}
}

// problemList gathers a config file's problems: those about a key of the
// file (*config.Error) are listed in the file's order, the others after.
type problemList struct {
	keyed  []*config.Error
	others []error
}

// add files each error, unjoining what errors.Join put together.
func (l *problemList) add(errs ...error) {
	for _, e := range errs {
		for _, err := range unjoin(e) {
			var ce *config.Error
			if errors.As(err, &ce) {
				l.keyed = append(l.keyed, ce)
			} else {
				l.others = append(l.others, err)
			}
		}
	}
}

// sorted returns the keyed problems by line, then the others.
func (l *problemList) sorted() []error {
	sort.SliceStable(l.keyed, func(i, j int) bool { return l.keyed[i].Line < l.keyed[j].Line })
	out := make([]error, 0, len(l.keyed)+len(l.others))
	for _, p := range l.keyed {
		out = append(out, p)
	}
	return append(out, l.others...)
}

// validate lists, in the config file's order, every problem that would
// stop 'run': the config's own mistakes (cfgErr), every profile or
// template that does not load, the MQTT password and TLS files, and a
// data directory that cannot be created. Each names the line of the
// config key it is about. It changes nothing on the machine.
func validate(cfg *config.Config, cfgErr error) []error {
	var l problemList
	l.add(cfgErr)

	// A profile several devices share is reported once, at its first use.
	first := map[string]int{}
	for i, dev := range cfg.Devices {
		key, name := "profile", dev.Profile
		if dev.Driver == config.DriverPrinter {
			key, name = "template", dev.Template
		}
		if name == "" {
			continue // the config's own check says it is missing
		}
		path := fmt.Sprintf("devices[%d].%s", i, key)
		files, err := resolveDeviceFiles(cfg, dev)
		switch j, seen := first[key+"\x00"+name]; {
		case err == nil:
			// The site's criteria of the device, laid over its profile's.
			_, cp := resolveCriteria(cfg, i, dev, files.profile)
			for _, p := range cp {
				l.add(p)
			}
		case seen && j >= 0:
			l.add(cfg.Errorf(path, "%s %q does not load: see devices[%d]", key, name, j))
		case !seen:
			first[key+"\x00"+name] = i
			l.add(cfg.Errorf(path, "%v", err))
		}
		if _, seen := first[key+"\x00"+name]; !seen {
			first[key+"\x00"+name] = -1
		}
	}

	quiet := slog.New(slog.DiscardHandler)
	l.add(mqttFileProblems(mqttpub.CheckFiles(publisherOptions(cfg, nil, quiet, nil)), cfg.Errorf)...)

	if err := datadir.CheckCreatable(cfg.Gateway.DataDir); err != nil {
		l.add(cfg.Errorf("gateway.data_dir", "%q: %v", cfg.Gateway.DataDir, err))
	}
	if err := keystore.Check(keystore.Path(cfg.Gateway.DataDir, cfg.Gateway.SigningKey), cfg.Gateway.SigningKey != ""); err != nil {
		key := "gateway.signing_key"
		if cfg.Gateway.SigningKey == "" {
			key = "gateway.data_dir"
		}
		l.add(cfg.Errorf(key, "%v", err))
	}

	return l.sorted()
}

// mqttFileProblems turns the MQTT client's file problems into problems on
// the lines of their keys (errorf is the config's Errorf).
func mqttFileProblems(errs []error, errorf func(path, format string, args ...any) *config.Error) []error {
	out := make([]error, 0, len(errs))
	for _, err := range errs {
		var fe *mqttpub.FileError
		if errors.As(err, &fe) {
			out = append(out, errorf("mqtt."+fe.Key, "%v", fe.Err))
		} else {
			out = append(out, err)
		}
	}
	return out
}

// unjoin returns the errors errors.Join put together, or err alone.
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
