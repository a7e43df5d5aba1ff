// Package gateway is sterigate's runtime. Its sub-packages are the parts a
// running gateway is made of: config (the YAML file), journal (the durable
// outbox in SQLite), mqttpub (the MQTT publisher), embedbroker (the
// in-process broker of the demo), supervise (goroutine supervision),
// datadir (the data directory and its one-gateway lock) and console (the
// local status page and metrics).
//
// The gateway never imports drivers: cmd/sterigate wires drivers to the
// journal through protocol.Sink.
package gateway
