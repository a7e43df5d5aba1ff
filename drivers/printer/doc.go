// Package printer is the printer-port tap: it reads the bytes a sterilizer
// sends to its RS-232 printer, cuts the stream into reports, parses each
// report with a template into a protocol.CycleRecord and delivers it to a
// protocol.Sink, keeping the exact printed bytes as the record's Raw (the
// printout is the legal original).
//
// Templates are YAML files (see docs/printer.md); three are built in:
// "statclave-en" and "dac-de" for the simulator's printout styles, and
// "amsco-ls" for devices that print one line of values per second.
//
// The package is split along the data path: Splitter (bytes → reports,
// incremental, loses no byte, not fooled by line noise that looks like a
// printer control sequence), Template.Parse (report → record, with the
// device's own figures), planCopy (a copy of a cycle already journaled:
// a new revision or a reprint) and Tap (serial port → Splitter → Template
// → Sink, reopening the port when it disappears, reporting garbage).
package printer
