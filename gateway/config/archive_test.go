package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFileKind(t *testing.T) {
	for text, want := range map[string]string{
		"gateway: {id: g, site: s}\nmqtt: {brokers: []}\n": KindGateway,
		"mqtt: {brokers: []}\npostgres: {url: x}\n":        KindArchive,
		"archive: {id: a}\n":                               KindArchive,
		"not: [valid":                                      KindGateway,
	} {
		if got := FileKind([]byte(text)); got != want {
			t.Errorf("FileKind(%q) = %s, want %s", text, got, want)
		}
	}
}

func TestArchiveDefaultsAndURLFile(t *testing.T) {
	dir := t.TempDir()
	urlFile := filepath.Join(dir, "pg.url")
	if err := os.WriteFile(urlFile, []byte("postgres://sterigate:s3cret@db:5432/sterigate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := ParseArchive("archive.yaml", []byte("mqtt: {brokers: [\"tcp://127.0.0.1:1883\"]}\npostgres: {url_file: "+urlFile+"}\narchive: {id: a1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.MQTT.ClientID != "sterigate-archive-a1" || c.Archive.Group != DefaultArchiveGroup || c.Archive.GapAlarmAfter != DefaultGapAlarmAfter ||
		c.Archive.BatchSize != DefaultArchiveBatch || c.MQTT.TopicRoot != DefaultTopicRoot || c.Archive.Telemetry {
		t.Fatalf("defaults: %+v %+v", c.MQTT, c.Archive)
	}
	url, err := c.PostgresURL()
	if err != nil || url != "postgres://sterigate:s3cret@db:5432/sterigate" {
		t.Fatalf("url %q, %v", url, err)
	}
	// A missing url_file names the key and its line, never a password.
	c, _ = ParseArchive("archive.yaml", []byte("mqtt: {brokers: [\"tcp://127.0.0.1:1883\"]}\npostgres:\n  url_file: /nonexistent/pg.url\narchive: {id: a1}\n"))
	if _, err := c.PostgresURL(); err == nil || !strings.Contains(err.Error(), "archive.yaml:3: postgres.url_file") {
		t.Fatalf("missing url_file: %v", err)
	}
}

func TestReceiptsKeys(t *testing.T) {
	base := "gateway: {id: g, site: s}\nmqtt:\n  brokers: [\"tcp://127.0.0.1:1883\"]\n"
	c, err := Parse("g.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if c.MQTT.Receipts != ReceiptsOff || c.MQTT.ReceiptsAlarmAfter != time.Hour || c.MQTT.ReceiptsRepublishAfter != 15*time.Minute {
		t.Fatalf("defaults: %+v", c.MQTT)
	}
	_, err = Parse("g.yaml", []byte(base+"  receipts: always\n"))
	if err == nil || !strings.Contains(err.Error(), `g.yaml:4: mqtt.receipts: "always" is not one of off, expected, required`) {
		t.Fatalf("bad receipts: %v", err)
	}
	c, err = Parse("g.yaml", []byte(base+"  receipts: required\n  receipts_republish_after: 3s\n"))
	if err != nil || c.MQTT.Receipts != ReceiptsRequired || c.MQTT.ReceiptsRepublishAfter != 3*time.Second {
		t.Fatalf("required: %+v %v", c.MQTT, err)
	}
}
