// Package writeback logs decided calls back into Clio (shared/CLIO-API.md
// "Writing back (§10)"): a PhoneCommunication on the matter for every decided
// call of a known contact with a matter, a draft TimeEntry for the staff member
// who took a bridged call, a callback Task when a message was left or nobody
// answered, and the recorded message as a Document on the matter.
//
// Write-back never delays or fails a call. At call end [Plan] turns the call
// record into items and [Outbox.Enqueue] stores them in SQLite (table
// clio_outbox); a [Worker] goroutine sends them one at a time, only while the
// shared [clio.Budget] leaves the lookups their reserve and no Retry-After
// window runs. Items retry with exponential backoff, honour Retry-After, survive
// restarts (pending items resume), and end done or failed with the reason. A
// communication is found again by its external property (the matterline call
// id) before it is posted, so a retry after a lost answer never posts twice.
// A 403 fails the item at once, naming the permission the Clio app lacks.
package writeback
