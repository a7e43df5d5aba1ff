// Package protocol holds sterigate's contracts: the cycle record, live
// telemetry and events that drivers produce, the status payloads, and the
// MQTT topics they are published on.
//
// Everything outside this package depends on it and it depends on nothing
// of sterigate's, so a consumer (a dashboard, a traceability system, a test)
// can import it alone to decode what the gateway publishes.
package protocol
