// Package wiegand decodes the Wiegand reader protocol into gatehouse credentials.
//
// The package is a library in four layers, each usable alone and each driven with explicit
// timestamps so that it is deterministic and testable without sleeping:
//
//   - Decode and Encode convert between a frame's bits and a Frame: the credential in
//     gatehouse's (Leosac's) card format — lower-case hex bytes of the raw bit stream, parity
//     included, MSB first, last byte zero-padded, plus the bit count — and, for the known
//     layouts (26-bit H10301, 34-bit H10306, 35-bit HID Corporate 1000, 37-bit H10304), the
//     facility code, the card number and the parity check.
//   - DecodeKey, EncodeKey4, EncodeKey8 and PINCollector handle keypads that send one 4-bit or
//     8-bit frame per key press, and turn key presses into PINs (end key, timeout, clear key).
//   - Assembler turns pulses on the D0 and D1 lines (Edge values) into frames: a frame ends
//     after an inter-bit gap, and noise or an overlong frame is discarded and reported.
//   - Reader turns frames into Read values according to a Leosac reader Mode (cards only, PIN
//     only, card followed by PIN, autodetect).
//
// Decoder combines an Assembler and a Reader, and Run drives a Decoder from a Source: a
// GPIOSource reading the data lines from a Linux GPIO character device, or a PulseSource
// replaying a synthetic pulse train.
//
// Time: every stateful type (PINCollector, Reader, Assembler, Decoder) takes the current time
// as an argument, never reads the clock, and exposes Deadline, the time at which it next needs
// a Tick. Nothing in this package is safe for concurrent use unless its documentation says so;
// Run owns its Decoder while it runs.
package wiegand
