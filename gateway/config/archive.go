package config

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sterigate/sterigate/protocol"
)

// ArchiveConfig is the configuration of one 'sterigate archive' instance:
// the gateway's mqtt block (where to read), PostgreSQL (where to keep) and
// the archive's own identity (docs/config.md#archive-configuration).
type ArchiveConfig struct {
	File     string
	MQTT     MQTT
	Postgres Postgres
	Archive  Archive
	lines    map[string]int
}

// Postgres says how to reach the database. URL and URLFile are exclusive:
// a URL holds the password, so the file keeps it out of the config.
type Postgres struct {
	URL     string
	URLFile string
}

// Archive is the instance's identity and behaviour.
type Archive struct {
	// ID names the instance: its MQTT client id is "sterigate-archive-<id>"
	// (a persistent session) and its alarms go to
	// <root>/<site>/archive/<id>/alarm.
	ID string
	// Group is the shared-subscription group: instances of one group
	// share the messages ($share/<group>/...).
	Group string
	// Telemetry keeps telemetry batches' samples; without it only their
	// place in the hash chain is kept.
	Telemetry bool
	// GapAlarmAfter is how long a hole in a device's sequence may stay
	// open (the entries may still be on their way) before it is recorded
	// as a gap and raised as an alarm.
	GapAlarmAfter time.Duration
	// BatchSize is the most messages stored in one transaction.
	BatchSize int
}

// Archive defaults.
const (
	DefaultArchiveGroup  = "sterigate-archive"
	DefaultGapAlarmAfter = 2 * time.Minute
	DefaultArchiveBatch  = 500
)

// Line returns the line of the key at path, as Config.Line.
func (c *ArchiveConfig) Line(path string) int {
	return (&Config{lines: c.lines}).Line(path)
}

// Errorf returns an Error about the key at path, on its line.
func (c *ArchiveConfig) Errorf(path, format string, args ...any) *Error {
	return &Error{File: c.File, Line: c.Line(path), Path: path, Msg: fmt.Sprintf(format, args...)}
}

// File kinds IsArchiveFile tells apart.
const (
	KindGateway = "gateway"
	KindArchive = "archive"
)

// FileKind says which configuration data is by its top-level keys: an
// archive's names postgres or archive, anything else is a gateway's. A
// file that is not YAML is taken as a gateway's (its parser reports it).
func FileKind(data []byte) string {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil || len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return KindGateway
	}
	top := root.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		switch top.Content[i].Value {
		case "postgres", "archive":
			return KindArchive
		}
	}
	return KindGateway
}

// LoadArchive reads and validates an archive configuration file. Like
// LoadPartial, it returns what it could decode together with every
// mistake; the config is nil only when the file cannot be read or is not
// YAML.
func LoadArchive(path string) (*ArchiveConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return ParseArchive(path, data)
}

// ParseArchive validates data as the archive configuration file named file.
func ParseArchive(file string, data []byte) (*ArchiveConfig, error) {
	root, err := readRoot(file, data, "archive.example.yaml")
	if err != nil {
		return nil, err
	}
	d := newDecoder()
	c := &ArchiveConfig{File: file, lines: d.Lines}
	a := &c.Archive
	d.Mapping(root, "",
		field{Key: "mqtt", Decode: func(n *yaml.Node, p string) { d.mqtt(n, p, &c.MQTT) }},
		field{Key: "postgres", Decode: func(n *yaml.Node, p string) {
			d.Mapping(n, p,
				field{Key: "url", Decode: d.SetStr(&c.Postgres.URL)},
				field{Key: "url_file", Decode: d.SetStr(&c.Postgres.URLFile)},
			)
		}},
		field{Key: "archive", Decode: func(n *yaml.Node, p string) {
			d.Mapping(n, p,
				field{Key: "id", Decode: d.SetStr(&a.ID)},
				field{Key: "group", Decode: d.SetStr(&a.Group)},
				field{Key: "telemetry", Decode: d.SetBool(&a.Telemetry)},
				field{Key: "gap_alarm_after", Decode: d.SetDuration(&a.GapAlarmAfter, time.Second)},
				field{Key: "batch_size", Decode: d.SetInt(&a.BatchSize, 1, 10000)},
			)
		}},
	)
	c.applyDefaults()
	d.validateArchive(c)
	return c, d.finish(file)
}

func (c *ArchiveConfig) applyDefaults() {
	id := ""
	if c.Archive.ID != "" {
		id = "sterigate-archive-" + c.Archive.ID
	}
	c.MQTT.applyDefaults(id)
	if c.Archive.Group == "" {
		c.Archive.Group = DefaultArchiveGroup
	}
	if c.Archive.GapAlarmAfter == 0 {
		c.Archive.GapAlarmAfter = DefaultGapAlarmAfter
	}
	if c.Archive.BatchSize == 0 {
		c.Archive.BatchSize = DefaultArchiveBatch
	}
}

func (d *decoder) validateArchive(c *ArchiveConfig) {
	d.validateMQTT(c.MQTT)
	for _, key := range []string{"confirm_timeout", "receipts", "receipts_alarm_after", "receipts_republish_after"} {
		if _, given := d.Lines["mqtt."+key]; given {
			d.FailAtf("mqtt."+key, "is a gateway setting; an archive does not use it")
		}
	}
	a := c.Archive
	if a.ID == "" {
		d.FailAtf("archive.id", "is required: a name for this archive instance, e.g. archive-1 (its MQTT session and alarm topic)")
	} else if err := protocol.CheckTopicLevel("archive.id", a.ID); err != nil {
		d.FailAtf("archive.id", "%s", strings.TrimPrefix(err.Error(), "archive.id "))
	}
	if err := protocol.CheckTopicLevel("archive.group", a.Group); err != nil {
		d.FailAtf("archive.group", "%s", strings.TrimPrefix(err.Error(), "archive.group "))
	}
	pg := c.Postgres
	switch {
	case pg.URL == "" && pg.URLFile == "":
		d.FailAtf("postgres.url_file", "is required (or postgres.url): the PostgreSQL connection URL, e.g. postgres://sterigate@db:5432/sterigate")
	case pg.URL != "" && pg.URLFile != "":
		d.FailAtf("postgres.url", "give url or url_file, not both")
	case pg.URL != "":
		if err := CheckPostgresURL(pg.URL); err != nil {
			d.FailAtf("postgres.url", "%v", err)
		}
	}
}

// CheckPostgresURL reports why s is not a PostgreSQL URL, naming it
// without its password.
func CheckPostgresURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return fmt.Errorf("%q is not a postgres:// URL (e.g. postgres://sterigate@db.example:5432/sterigate)", RedactURL(s))
	}
	if _, set := u.User.Password(); set {
		return fmt.Errorf("%q: the password must not be written in the config file (it is shown in logs and errors); put the URL in a file and name it in postgres.url_file, or use PGPASSFILE", RedactURL(s))
	}
	return nil
}

// PostgresURL returns the connection URL: url, or the first line of
// url_file. Errors name the key
// and line, never the URL's password.
func (c *ArchiveConfig) PostgresURL() (string, error) {
	if c.Postgres.URLFile == "" {
		return c.Postgres.URL, nil
	}
	// As mqtt.password_file: the path as written (relative to the
	// working directory).
	path := c.Postgres.URLFile
	b, err := os.ReadFile(path)
	if err != nil {
		return "", c.Errorf("postgres.url_file", "%v", err)
	}
	s := strings.TrimSpace(string(b))
	if u, err := url.Parse(s); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", c.Errorf("postgres.url_file", "%s does not hold a postgres:// URL", path)
	}
	return s, nil
}
