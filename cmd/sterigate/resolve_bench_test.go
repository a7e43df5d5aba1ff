package main

import (
	"fmt"
	"testing"

	"github.com/sterigate/sterigate/gateway/config"
)

// BenchmarkResolveDevices200 resolves the profiles of a gateway of 200
// devices that all use the built-in profile, as 'run' does at start.
func BenchmarkResolveDevices200(b *testing.B) {
	cfg := &config.Config{File: "sterigate.yaml"}
	for i := range 200 {
		cfg.Devices = append(cfg.Devices, config.Device{ID: fmt.Sprintf("ac-%d", i), Driver: config.DriverModbusTCP, Profile: "sim-autoclave"})
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := resolveDevices(cfg); err != nil {
			b.Fatal(err)
		}
	}
}
