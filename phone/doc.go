// Package phone is matterline's scripted SIP phone, for the demo (matterline demo
// --call) and for tests. It is a deliberate, documented feature of the product,
// not a test fake: one package, two levels of control on the same sipgo stack.
//
// Caller and Callee behave like a well-mannered phone: a Caller dials (UAC) and a
// Callee answers (UAS), on sipgo over UDP with their media on package media.
//
// UA is the same phone at the protocol level, for the tests of a B2BUA: it
// places calls over UDP or TCP with any SDP (Offer writes one, including offers
// a polite phone would not make), lets the test send each message itself (ACK
// late or never, CANCEL, re-INVITE, UPDATE, INFO, BYE) and keeps every response
// and every request the far end sent; with AnswerOptions it answers INVITEs as a
// callee would (Incoming). Its media is an RTPPeer that records each RTP packet
// raw (RTPPacket, WaitPackets) and sends RFC 4733 events, G.711 silence and
// constant-level audio, so a test sees exactly what a relay rewrote.
//
// A Caller or Callee offers or answers PCMU/PCMA with RFC 4733 telephone-events (RFC 3264
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
// For Caller and Callee every step is reported as an Event with its time to an
// optional callback, so a demo can print what happens. Everything that waits
// takes a context and has a default timeout; their Close ends every call (BYE
// first, then media, then ports). A UA's Close sends nothing: the test decides
// what is said. Every Close stops every goroutine and socket the phone started. Phones listen on the address they
// are given (127.0.0.1 and a free port by default), never on a wildcard. Nothing
// is kept in package variables, and sipgo's process-wide settings are left alone.
package phone
