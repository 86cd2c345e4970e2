// Package sip is matterline's inbound call core: SIP listeners (UDP and TCP) on
// sipgo, the trusted-source ACL, the caller's leg of each call, the IVR menu and the
// live call registry. It asks two small interfaces it defines, Lookup (who is
// calling) and Router (what an intent means), and executes the typed decision.
//
// What is implemented, by specification:
//
//   - RFC 3261 §8.2 and §17.2: 100 Trying at once; 403 for out-of-dialog requests
//     from untrusted transport sources (checked on the transport source address,
//     never on Via); 400 for INVITEs missing From/To/Call-ID/CSeq/Contact; 420 with
//     Unsupported for Require options other than "timer"; 405 with Allow for
//     methods we do not serve (MESSAGE, SUBSCRIBE, NOTIFY, REFER, PRACK, PUBLISH,
//     REGISTER) and 481 for requests in unknown (or ending) dialogs. 503 with
//     Retry-After over MaxCalls and while draining.
//   - RFC 3261 §13.3.1.4: our 2xx to an INVITE (initial or re-INVITE) is
//     retransmitted on UDP from T1 doubling to T2 until the ACK arrives, for at most
//     64*T1 (32 s); no ACK ends the call with BYE. The INVITE handler keeps running
//     until then (sipgo ends the transaction when the handler returns). A
//     re-INVITE with a higher CSeq while an earlier 2xx still waits for its ACK
//     counts as that ACK (the caller evidently got the 2xx; §14.2's 500 applies
//     only before the final response).
//   - RFC 3261 §9.2: CANCEL before the answer is answered by sipgo (200, then 487 to
//     the INVITE); the call sees it through the dialog context and is torn down.
//   - RFC 3261 §15: BYE either way; ours leaves from the listening socket (UDP) or
//     the caller's connection (TCP). Teardown order: BYE, media, port.
//   - RFC 3261 §11: OPTIONS in and out of dialog: 200 with Allow, Accept, Supported.
//   - RFC 3264 §5–§8: offer/answer for audio with PCMU/PCMA and telephone-event;
//     488 with a Warning (RFC 3261 §20.43, code 305 or 399) when nothing is common or
//     the SDP is broken. An INVITE without SDP (late offer, RFC 3261 §13.2.1) is
//     answered 488 "late offer not supported": matterline answers only offers.
//     re-INVITE: hold (sendonly, inactive, c=0.0.0.0) is answered recvonly/inactive
//     and suspends the RTP inactivity timer; resume answers sendrecv; a new remote
//     address moves our RTP there; its Contact refreshes the remote target
//     (§12.2.2). A re-INVITE without SDP gets our current SDP.
//   - RFC 3311 UPDATE: session refresh without SDP, or a new offer answered in the
//     200.
//   - RFC 4028 session timers: Session-Expires and Min-SE on INVITE, 422 with
//     Min-SE below 90 s; when the caller supports "timer" the 2xx carries
//     Session-Expires;refresher=uac and Require: timer; refreshes by re-INVITE or
//     UPDATE are answered 200; a session that is not refreshed ends with BYE
//     (§10: at the interval minus min(32 s, interval/3)).
//   - RFC 4733 DTMF (telephone-event at whatever payload type the offer uses) and
//     RFC 6086 legacy INFO with application/dtmf-relay; INFO with other bodies gets
//     415, an empty INFO 200.
//   - RFC 3325 P-Asserted-Identity (from trusted sources) or From give the caller
//     number; "anonymous" (RFC 3323) and other withheld forms give none.
//
// The caller lookup starts the moment an INVITE is admitted; the answer waits at
// most Config.AnswerWait for it, the result is attached to the call whenever it
// arrives (bounded by Config.LookupTimeout), and the menu reads no digit before it
// is attached or given up. Routing decisions are executed here: a transfer goes
// to the Transferer when one is plugged in (issue 5); everything unserved plays
// nobody_available (outside_hours when closed) and returns to the menu.
//
// Known gaps: a request naming refresher=uas is still answered refresher=uac
// (matterline sends no session refreshes itself); session timers run only when the
// caller supports "timer"; TLS and WebSocket transports are not offered.
//
// Each call is serialized by one mutex (sipgo runs every message on its own
// goroutine). Every call's log lines carry one call_id attribute; lookup results are
// logged with Clio ids only, never names.
package sip
