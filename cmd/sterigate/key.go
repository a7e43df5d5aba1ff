package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sterigate/sterigate/gateway/config"
	"github.com/sterigate/sterigate/gateway/datadir"
	"github.com/sterigate/sterigate/gateway/journal"
	"github.com/sterigate/sterigate/gateway/keystore"
	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/protocol/evidence"
)

// openSigningKey returns the gateway's signing key, making it at the
// first start. A key file that is missing while the journal is signed is
// refused: a new key would break the evidence, silently.
func openSigningKey(cfg *config.Config, journalPath string, log *slog.Logger) (*evidence.Signer, error) {
	path := keystore.Path(cfg.Gateway.DataDir, cfg.Gateway.SigningKey)
	keys, err := journalKeys(journalPath)
	if err != nil {
		// A journal that cannot be read (empty, foreign, damaged) is for
		// the journal's own start-up check to refuse or replace, with its
		// own message; the key it holds is then unknown here, and the
		// journal still refuses a key that is not its current one.
		log.Warn("signing key: cannot read the journal's keys", "journal", journalPath, "err", err)
		keys = nil
	}
	current := ""
	if len(keys) > 0 {
		current = keys[len(keys)-1].ID
	}
	done, err := keystore.Recover(path, cfg.Gateway.DataDir, current)
	if err != nil {
		return nil, err
	}
	if done != "" {
		log.Warn("signing key: " + done)
	}
	s, err := keystore.Load(path, cfg.Gateway.DataDir)
	switch {
	case err == nil:
		return s, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	case current != "":
		return nil, fmt.Errorf("signing key %s is missing, but the journal is signed by key %s: restore the key file from your backup (docs/evidence.md), "+
			"or, if it is lost for good, run 'sterigate key rotate --config %s --old-key-lost'", path, current, cfg.File)
	}
	s, err = keystore.Create(path, time.Now())
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	log.Warn("created the gateway's signing key: back it up, apart from this PC (docs/evidence.md)", "key", s.ID(), "file", path)
	return s, nil
}

// journalKeys reads the signing keys of the journal at path, none when
// there is no journal yet.
func journalKeys(path string) ([]evidence.PublicKey, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	r, err := journal.OpenReader(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.SigningKeys(context.Background())
}

// keyMismatchHint turns the journal's refusal of a key into what to do.
func keyMismatchHint(cfg *config.Config, s *evidence.Signer, err error) error {
	if !errors.Is(err, journal.ErrKeyMismatch) {
		return err
	}
	return fmt.Errorf("signing key %s holds key %s: %w. Restore the journal's key file from your backup, or run 'sterigate key rotate --config %s --old-key-lost' if it is lost for good (docs/evidence.md)",
		keystore.Path(cfg.Gateway.DataDir, cfg.Gateway.SigningKey), s.ID(), err, cfg.File)
}

// keyMessage is the payload of the retained key topic: the journal's
// current key.
func keyMessage(cfg *config.Config, keys []evidence.PublicKey) ([]byte, error) {
	if len(keys) == 0 {
		return nil, errors.New("the journal records no signing key")
	}
	return json.Marshal(keys[len(keys)-1].Message(cfg.Gateway.ID, cfg.Gateway.Site))
}

func cmdKey(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := func() {
		fmt.Fprintln(stderr, `usage: sterigate key show (--config FILE | --data-dir DIR) [--json | --pem]
       sterigate key rotate --config FILE [--old-key-lost]

show prints the gateway's signing keys: the current one and every one it
replaced, with their ids, public keys and dates. rotate replaces the
signing key; the gateway must be stopped. Run 'sterigate key show -h' or
'sterigate key rotate -h' for their flags. docs/evidence.md says how keys
are kept, backed up and rotated.`)
	}
	if len(args) == 0 {
		usage()
		return usageError{"key: give show or rotate"}
	}
	switch args[0] {
	case "-h", "-help", "--help":
		usage()
		return nil
	case "show":
		return keyShow(args[1:], stdout, stderr)
	case "rotate":
		return keyRotate(ctx, args[1:], stdout, stderr)
	}
	usage()
	return usageError{fmt.Sprintf("key: unknown subcommand %q (show or rotate)", args[0])}
}

// keyPlace is where a key command finds a gateway's keys.
type keyPlace struct {
	cfg     *config.Config // nil with --data-dir
	dataDir string
	keyFile string
}

func (k keyPlace) journalPath() string { return filepath.Join(k.dataDir, "journal.db") }

func keyShow(args []string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("key show", flag.ContinueOnError)
	flags.SetOutput(stderr)
	configPath := flags.String("config", "", "the gateway's configuration file")
	dataDir := flags.String("data-dir", "", "the gateway's data directory (instead of --config)")
	asJSON := flags.Bool("json", false, "print each key as its key message, one JSON object per line, oldest first (a file 'sterigate verify --key' reads)")
	asPEM := flags.Bool("pem", false, "print each public key as PEM, oldest first (what openssl reads)")
	flags.Usage = func() {
		fmt.Fprintln(stderr, "usage: sterigate key show (--config FILE | --data-dir DIR) [--json | --pem]\n\n"+
			"Prints the gateway's signing keys, from its journal and its data directory; never the private key. Flags:")
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return usageError{fmt.Sprintf("key show: unexpected argument %q", flags.Arg(0))}
	}
	if *asJSON && *asPEM {
		return usageError{"key show: give --json or --pem, not both"}
	}
	place, err := findKeyPlace("key show", *configPath, *dataDir, stderr)
	if err != nil {
		return err
	}
	keys, current, err := place.keys()
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return fmt.Errorf("key show: no signing key in %s yet: the gateway makes one at its first start", place.dataDir)
	}
	gateway, site := "", ""
	if place.cfg != nil {
		gateway, site = place.cfg.Gateway.ID, place.cfg.Gateway.Site
	}
	switch {
	case *asJSON:
		enc := json.NewEncoder(stdout)
		for _, k := range keys {
			if err := enc.Encode(k.Message(gateway, site)); err != nil {
				return err
			}
		}
		return nil
	case *asPEM:
		for _, k := range keys {
			if _, err := stdout.Write(k.PEM()); err != nil {
				return err
			}
		}
		return nil
	}
	var b strings.Builder
	for i := len(keys) - 1; i >= 0; i-- {
		k := keys[i]
		state := "replaced by " + nextOf(keys, k.ID)
		if k.ID == current {
			state = "current"
		}
		fmt.Fprintf(&b, "key %s (%s, %s)\n", k.ID, evidence.Algorithm, state)
		fmt.Fprintf(&b, "  public key  %s\n", k.Message("", "").PublicKey)
		fmt.Fprintf(&b, "  created     %s\n", k.CreatedAt.UTC().Format(time.RFC3339))
		if k.Previous != "" {
			fmt.Fprintf(&b, "  replaces    %s\n", k.Previous)
		}
		if k.ID == current {
			fmt.Fprintf(&b, "  private key %s (never printed)\n", place.keyFile)
			if place.cfg != nil {
				fmt.Fprintf(&b, "  published   %s (retained)\n", protocol.Topics{Root: place.cfg.MQTT.TopicRoot, Site: site}.GatewayKey(gateway))
			}
		}
	}
	fmt.Fprintf(&b, "Keep a copy of these public keys (sterigate key show --json) apart from this PC: 'sterigate verify --key' checks the journal against it.\n")
	_, err = io.WriteString(stdout, b.String())
	return err
}

func nextOf(keys []evidence.PublicKey, id string) string {
	for _, k := range keys {
		if k.Previous == id {
			return k.ID
		}
	}
	return "another key"
}

// findKeyPlace resolves --config or --data-dir.
func findKeyPlace(cmd, configPath, dataDir string, stderr io.Writer) (keyPlace, error) {
	switch {
	case configPath != "" && dataDir != "":
		return keyPlace{}, usageError{cmd + ": give --config or --data-dir, not both"}
	case configPath != "":
		cfg, err := loadAndValidate(configPath, stderr)
		if err != nil {
			return keyPlace{}, err
		}
		return keyPlace{cfg: cfg, dataDir: cfg.Gateway.DataDir, keyFile: keystore.Path(cfg.Gateway.DataDir, cfg.Gateway.SigningKey)}, nil
	case dataDir != "":
		return keyPlace{dataDir: dataDir, keyFile: keystore.Path(dataDir, "")}, nil
	}
	return keyPlace{}, usageError{cmd + ": --config or --data-dir is required"}
}

// keys returns every key of the gateway, oldest first, and the current
// one's id: the journal's key table, the key messages kept in the data
// directory, and the public half of the key file when it is readable and
// nothing else names it yet (before the first start).
func (k keyPlace) keys() ([]evidence.PublicKey, string, error) {
	keys, err := journalKeys(k.journalPath())
	if err != nil {
		return nil, "", err
	}
	known := map[string]bool{}
	for _, pk := range keys {
		known[pk.ID] = true
	}
	kept, err := keystore.ReadPublic(k.dataDir)
	if err != nil {
		return nil, "", err
	}
	for _, pk := range kept {
		if !known[pk.ID] {
			keys = append([]evidence.PublicKey{pk}, keys...)
			known[pk.ID] = true
		}
	}
	current := ""
	if len(keys) > 0 {
		current = keys[len(keys)-1].ID
	}
	if s, err := keystore.Load(k.keyFile, k.dataDir); err == nil && !known[s.ID()] {
		keys = append(keys, s.Public())
		current = s.ID()
	}
	return keys, current, nil
}

func keyRotate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("key rotate", flag.ContinueOnError)
	flags.SetOutput(stderr)
	configPath := flags.String("config", "", "the gateway's configuration file (required)")
	lost := flags.Bool("old-key-lost", false, "the current private key is lost: the rotation is signed by the new key itself, and receivers must be given the new key")
	flags.Usage = func() {
		fmt.Fprintln(stderr, "usage: sterigate key rotate --config FILE [--old-key-lost]\n\n"+
			"Replaces the gateway's signing key; stop the gateway first. A key_rotation event, signed by the old\n"+
			"key and naming the new one, goes on every device's chain, so entries of both keys stay verifiable.\n"+
			"The old private key is then gone; back up the new one. Flags:")
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return usageError{fmt.Sprintf("key rotate: unexpected argument %q", flags.Arg(0))}
	}
	if *configPath == "" {
		flags.Usage()
		return usageError{"key rotate: --config is required"}
	}
	cfg, err := loadAndValidate(*configPath, stderr)
	if err != nil {
		return err
	}
	lock, err := datadir.Acquire(cfg.Gateway.DataDir)
	if err != nil {
		var inUse *datadir.InUseError
		if errors.As(err, &inUse) {
			return fmt.Errorf("key rotate: %w (stop the gateway to rotate its key)", err)
		}
		return err
	}
	defer lock.Release()
	path := keystore.Path(cfg.Gateway.DataDir, cfg.Gateway.SigningKey)
	journalPath := filepath.Join(cfg.Gateway.DataDir, "journal.db")
	keys, err := journalKeys(journalPath)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return fmt.Errorf("key rotate: the journal %s records no signing key yet: the gateway makes its first key when it first starts", journalPath)
	}
	if _, err := keystore.Recover(path, cfg.Gateway.DataDir, keys[len(keys)-1].ID); err != nil {
		return err
	}
	var old *evidence.Signer
	if !*lost {
		if old, err = keystore.Load(path, cfg.Gateway.DataDir); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("key rotate: %w; if the key is lost for good, add --old-key-lost", err)
			}
			return err
		}
	}
	next, err := evidence.GenerateSigner(rand.Reader, time.Now(), keys[len(keys)-1].ID)
	if err != nil {
		return err
	}
	if err := keystore.PrepareNext(path, next); err != nil {
		return err
	}
	j, err := journal.Open(journalPath, journal.Options{Gateway: cfg.Gateway.ID, Site: cfg.Gateway.Site, Signer: old,
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		os.Remove(path + ".next")
		if old != nil {
			return keyMismatchHint(cfg, old, err)
		}
		return err
	}
	rotateErr := j.RotateKey(ctx, next, *lost)
	var after []evidence.PublicKey
	if rotateErr == nil {
		after, rotateErr = j.SigningKeys(ctx)
	}
	closeErr := j.Close()
	if rotateErr != nil {
		os.Remove(path + ".next")
		return fmt.Errorf("key rotate: %w", rotateErr)
	}
	if closeErr != nil {
		return closeErr
	}
	if err := keystore.CommitNext(path); err != nil {
		return err
	}
	if err := keystore.SavePublic(cfg.Gateway.DataDir, cfg.Gateway.ID, cfg.Gateway.Site, after); err != nil {
		return err
	}
	was := keys[len(keys)-1].ID
	fmt.Fprintf(stdout, "signing key %s replaced by key %s (%s)\n", was, next.ID(), path)
	if *lost {
		fmt.Fprintf(stdout, "The rotation is signed by the new key itself (the old one is lost): give receivers and auditors key %s through a channel you trust.\n", next.ID())
	} else {
		fmt.Fprintf(stdout, "Every device's chain now holds a key_rotation event signed by %s naming %s; entries of both keys stay verifiable.\n", was, next.ID())
	}
	fmt.Fprintln(stdout, "Back up the new key file now: the old private key is gone. Receivers get the new public key on the key topic when the gateway starts.")
	return nil
}
