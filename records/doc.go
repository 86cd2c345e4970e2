// Package records keeps what calls leave behind: one call record (CDR) per call and
// the voice messages callers recorded when nobody could take the call.
//
// Both live in matterline's SQLite database (see package store) in two tables this
// package owns and migrates under the component name "records":
//
//   - call_records: one row per call, written by the call path at the INVITE
//     (outcome in_progress) and replaced when the call ends (CallStore.Upsert,
//     idempotent on the pair SIP Call-ID + matterline call id). Rows a crash left in
//     progress are marked interrupted when matterline serve starts
//     (CallStore.MarkInterrupted). Clio contact, matter and staff appear by id
//     only, never by name.
//   - messages: one row per recording (MessageStore). The audio is a WAV file
//     (8 kHz mono 16-bit PCM, written by WAVWriter) in the configured messages
//     folder; the row stores its path relative to that folder. Deleting a message
//     deletes the row and the file.
//
// Times are stored as UTC text with millisecond precision
// (2026-11-24T16:00:05.123Z), which sorts correctly and which SQLite's date
// functions understand. Enumerations are stored as their text forms and CHECK
// constraints refuse any other value, so rows an admin writes by hand with the
// sqlite3 shell stay readable. docs/records.md describes every column.
//
// Messages hold client confidences: recordings are created 0600 in folders created
// 0700, and file names never contain caller-supplied text beyond a sanitized call id
// (MessagePath).
package records
