// Package learn drafts a device profile (docs/profiles.md) for a Modbus
// sterilizer nobody has a register list for, by watching it run one cycle.
//
// It works in three steps, each usable on its own:
//
//   - Scan finds which addresses of functions 3, 4, 1 and 2 answer, with
//     read requests only, one at a time, at a polite rate.
//   - Record reads every readable register about once per second while the
//     user runs a cycle, and writes the raw words to a recording file (JSON
//     lines, see recording.go and docs/learn.md) so the analysis can be
//     rerun offline.
//   - Analyse tries every register and register pair as every type, byte
//     order, scale and unit, and keeps what behaves like a steam cycle: a
//     temperature that rises to a plateau, a pressure whose saturation
//     temperature agrees with it there (IAPWS-IF97, protocol/steam), a
//     counter that steps by one, a phase code whose changes follow the
//     pressure. Draft turns the result into profile YAML in which every
//     field carries its evidence and confidence as a comment.
//
// Decoding goes through drivers/profile (Field.RawValue), so a draft
// decodes exactly as the analysis saw it. The package never writes to a
// device: it only calls RegisterReader.ReadRegisters with functions 1–4.
package learn
