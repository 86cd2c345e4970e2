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
//     methods we do not serve (MESSAGE, SUBSCRIBE, REFER, PRACK, PUBLISH,
//     REGISTER) and 481 for requests in unknown (or ending) dialogs and for a
//     NOTIFY that matches no subscription (RFC 6665 §4.1.3). 503 with
//     Retry-After over MaxCalls and while draining.
//   - RFC 3261 §13.3.1.4: our 2xx to an INVITE (initial or re-INVITE) is
//     retransmitted on UDP from T1 doubling to T2 until the ACK arrives, for at most
//     64*T1 (32 s); no ACK ends the call with BYE. The INVITE handler keeps running
//     until then (sipgo ends the transaction when the handler returns). A
//     re-INVITE with a higher CSeq while an earlier 2xx still waits for its ACK
//     counts as that ACK (the caller evidently got the 2xx; §14.2's 500 applies
//     only before the final response).
//   - RFC 3261 §12: one dialog layer (dialog.go) for both legs: route set from
//     Record-Route (in order for the caller's leg, reversed for the outbound
//     leg), loose and strict routing, remote target refreshed by re-INVITE and
//     UPDATE, CSeq per direction (500 for out-of-order requests), ACK for 2xx
//     through the route set; 481 or 408 (or a transaction timeout) to one of our
//     in-dialog requests ends the dialog (§12.2.1.2).
//   - RFC 3261 §9.2: CANCEL before the answer is answered by sipgo (200, then 487 to
//     the INVITE); the call learns of it from the transaction and is torn down.
//   - RFC 3261 §15: BYE either way; ours leaves from the listening socket (UDP) or
//     the caller's connection (TCP). Teardown order: BYE, media, port.
//   - RFC 3261 §11: OPTIONS in and out of dialog: 200 with Allow, Accept, Supported.
//   - RFC 3264 §5–§8 with RFC 6337 (media.OfferAnswer, one per leg): audio with
//     PCMU/PCMA and telephone-event at the peer's payload type; an offer with
//     several m= lines (audio+video, SAVP then AVP) is answered with as many, in
//     order, the unused ones with port 0 (§6); 488 with a Warning (RFC 3261
//     §20.43, code 305 or 399) when nothing is common or the SDP is broken. An
//     INVITE without SDP (late offer, RFC 3261 §13.2.1) gets our offer in the 200,
//     the answer comes in the ACK. re-INVITE: hold (sendonly, inactive,
//     c=0.0.0.0) is answered recvonly/inactive; a re-INVITE without SDP gets an
//     offer with all our codecs, sendrecv unless we hold (RFC 6337 §5.3), the
//     answer in the ACK; a new remote address moves our RTP there. The session's
//     direction follows every exchange, and the RTP inactivity timer runs only
//     while neither side holds. Glare (an offer while ours is pending) gets 491
//     with Retry-After; our own re-INVITE answered 491 is retried after 2.1-4 s
//     (RFC 3261 §14.1).
//   - RFC 3311 UPDATE: session refresh without SDP, or a new offer answered in the
//     200.
//   - RFC 4028 session timers: Session-Expires and Min-SE on INVITE, 422 with
//     Min-SE and Supported: timer below 90 s; when the caller supports "timer" the 2xx carries
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
// is attached or given up. A mapped menu digit is an intent at once unless a rule
// extension starts with it (ExtensionLister); then digits are collected with
// Config.DigitTimeout into extension:N. Server.Transfer injects an intent from the
// HTTP API. Routing decisions are executed here (transfer.go): the rule's message
// before the transfer (TTS of its text, else its WAV, else "transferring"), then
//
//   - cold (refer.go): REFER in the caller's dialog (RFC 3515 §2.4.1) with
//     Refer-To sip:NUMBER@outbound-proxy (tel:NUMBER with ReferURITel, RFC 3966)
//     or the rule's SIP URI, and Referred-By with the service address (RFC 3892).
//     202 only accepts it: the NOTIFY stream (Event: refer, also compact "o";
//     message/sipfrag, RFC 3420; answered 200, 489 for other events, 481 without a
//     pending REFER or with another REFER's id, RFC 3515 §2.4.6) decides: a 2xx
//     sipfrag ends our part with BYE (outcome referred); 4xx-6xx to the REFER, a
//     failure sipfrag or Config.ReferTimeout fall back to a bridged transfer
//     (FallbackBridge) or the unavailable handling; 481 or 408 to the REFER means
//     the caller's dialog is gone: the call ends, nothing is dialled.
//   - warm and the bridged fallback (leg_outbound.go, bridge_call.go): an INVITE
//     to the destination (numbers to the outbound proxy) with an SDP offer from a
//     new RTP port, From and P-Asserted-Identity (RFC 3325) with the caller's
//     number and a Diversion (RFC 5806) naming the service number, or the service
//     number. The caller hears ringback, or the destination's early media (a 183
//     or 180 with SDP, relayed to the caller). A 401/407 is answered once with
//     Config.OutboundAuth (only for the configured realm, or without one only on
//     the outbound proxy's path). Ring timeout or the caller leaving hands the
//     leg to a reaper that sends CANCEL (RFC 3261 §9.1: only after a provisional
//     response, waiting for one up to 64*T1; the final response is awaited at
//     most Config.CancelWait; a 2xx that crosses the CANCEL is ACKed and BYEd);
//     486/600 busy, 603 declined, other failures failed. On 2xx: ACK (again for
//     each retransmission; a second fork's 2xx is ACKed and BYEd in its own
//     dialog, also when it arrives after the leg let go), whisper to the callee (TTS of the rule's template with the caller's name
//     and matter number, else please_hold), the accept digit (RFC 4733 or INFO,
//     Config.AcceptTimeout; another digit or the timeout declines: BYE), then the
//     media bridge (media.Bridge). BYE on either side ends the other; hold
//     re-INVITEs from either side are reflected to the other leg (RFC 3264 §8.4)
//     and the answer applied. Requests from the callee are routed by Call-ID and
//     checked against the dialog's tags; the leg is registered before its INVITE
//     leaves. A call places at most three outbound calls.
//   - unavailable handling (transfer.go, unavailable.go): outside_hours or
//     nobody_available, then message (leave_message, beep, recording to the
//     MessageStore, thank_you, goodbye, BYE), menu, hangup (goodbye, BYE) or
//     rule:NAME through Router.Fallback, never visiting a rule twice.
//   - the voice-AI agent (agent.go, agent_refer.go): with Config.AgentMode first
//     (or fallback, for a closed responsible rule or an exhausted menu) the call
//     is bridged to Config.AgentURI, whose INVITE carries the lookup as
//     X-Matterline-* headers; an unreachable, busy or silent agent leaves the
//     call to the menu. A REFER in the agent's dialog (RFC 3515) naming
//     rule-NAME, staff-NAME, an extension or a rule's number is routed like a
//     menu intent and answered 202, else 403; the agent gets NOTIFY sipfrag
//     (100, then the transfer's result) and BYE. WithStreamAgent plugs in a
//     non-SIP agent (agent_stream.go) with the same rules.
//   - sip.mode redirect (redirect.go): 302 with Contact = the responsible staff
//     member's destination when the lookup and the rules allow, else the call is
//     answered as usual.
//
// Every call leaves exactly one records.CallRecord (cdr.go), written when the call
// has ended and its own goroutine has finished (so a message taken after the
// caller hung up is in it). Destinations only ever come from routing decisions.
//
// Known gaps: a request naming refresher=uas is still answered refresher=uac
// (matterline sends no session refreshes itself); session timers run only when the
// caller supports "timer"; TLS and WebSocket transports are not offered; no
// PRACK/100rel (reliable provisional responses) and no UPDATE of our own; the
// REFER subscription is not refreshed or unsubscribed (it ends with the call).
//
// Each call is an actor (call.go): one goroutine owns it from the INVITE to the
// call record; sipgo's goroutines, media, timers and the HTTP API post events to
// it, and the handler goroutine of a request waits until the call answered it
// (sipgo ends a transaction when its handler returns). An outbound leg belongs to
// its call; a leg that still rings when the call lets go of it belongs to its
// reaper. Every call's log lines carry one call_id attribute; lookup results are
// logged with Clio ids only, never names.
package sip
