// Package routing decides where a call goes. It holds the transfer rule model
// (Rule), the weekly hours syntax (Hours), firm closures, the SQLite store with
// live reload (Store), and the decision engine (Decide, Fallback).
//
// The engine is a pure function of (lookup result, intent, rule snapshot, clock):
// it never touches sockets, files or the database. sip asks, routing decides.
//
// A RuleSet is an immutable snapshot. Store polls SQLite's PRAGMA data_version and
// swaps in a new snapshot when any connection (this process, the CLI, the sqlite3
// shell) committed a change, so edits take effect within about a second. Rows that
// fail validation are left out of the snapshot's usable rules, reported once in the
// log, and shown with their reason by `matterline rules list`; they never stop the
// process. The time zone database is embedded (time/tzdata) so hours work on hosts
// without /usr/share/zoneinfo.
package routing

import _ "time/tzdata" // hours must not depend on the host's zoneinfo
