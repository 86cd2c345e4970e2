// Package phone is a small scripted SIP phone for demos and tests: a Caller that
// dials (UAC) and a Callee that answers (UAS), both on sipgo over UDP with their
// media on package media.
//
// A phone offers or answers PCMU/PCMA with RFC 4733 telephone-events (RFC 3264
// offer/answer), sends and receives RTP through a media.Session, presses keys as
// RFC 4733 events (or SIP INFO application/dtmf-relay when the far end negotiated
// no telephone-event), plays a sine tone as its "voice", and listens: every 50 ms of
// received audio is measured (level in dBFS, and the share of the energy at chosen
// frequencies with the Goertzel algorithm), so a script can wait until it hears
// speech, a prompt starting, ringback (440+480 Hz) or the other phone's tone.
//
// Requests the far end sends inside a call (BYE, re-INVITE, UPDATE, INFO, REFER,
// NOTIFY, OPTIONS) are routed by Call-ID by the phone itself (sipgo's client-side
// dialog cannot read them) and answered as a simple phone would: 200 to BYE and
// re-INVITE (with the phone's SDP), REFER declined or accepted per CallerConfig.
//
// Every step is reported as an Event with its time to an optional callback, so a
// demo can print what happens. Everything that waits takes a context and has a
// default timeout; Close ends every call (BYE first, then media, then ports) and
// stops every goroutine the phone started. Nothing is kept in package variables,
// and sipgo's process-wide settings are left alone.
package phone
