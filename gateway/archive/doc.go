// Package archive is the receiving end of sterigate: 'sterigate archive'
// subscribes to every site's cycle records, events and telemetry, keeps
// each message once in PostgreSQL, checks every device's chain on arrival
// (sequence, hash links, signatures, with protocol/evidence), records gaps,
// breaks and conflicting duplicates and publishes them as alarms, and
// tells each gateway, with a receipt, up to which seq its entries are
// safely stored (docs/fleet.md).
//
// Several instances share the load through an MQTT shared subscription;
// every insert is idempotent and a device's rows are locked while its
// messages are checked, so instances may run at once and take over from
// each other.
package archive
