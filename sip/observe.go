package sip

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/matterline/matterline/lookup"
	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/records"
	"github.com/matterline/matterline/routing"
)

// Observer receives typed notifications about calls and SIP traffic, for events,
// metrics and logs. package sip defines it and never imports the consumers; the
// binary adapts it to the event bus and the metrics.
//
// Implementations must be safe for concurrent use and fast: every method is called
// synchronously on the call path (the SIP handler, the call's goroutine, the lookup
// goroutine) and, for the per-call notifications, while a per-call lock is held. Do
// not block, do no I/O that can stall, and never call back into the Server from a
// method: hand the data to a buffered channel or a non-blocking publisher (the
// events.Bus drops slow subscribers rather than blocking) and return.
//
// Per call, notifications arrive in this order and each at most once, except
// Intent, Decision and TransferResult which repeat when the caller asks again:
//
//	CallStarted → LookupDone → Intent → Decision → (TransferResult) → CallEnded
//
// Every CallStarted is followed by exactly one CallEnded. Intent, Decision and
// TransferResult that happen before the lookup has finished are held back and
// delivered right after LookupDone. When a call ends while its lookup still runs,
// CallEnded waits briefly (the lookup is cancelled with the call) so LookupDone
// still comes first; a lookup that ignores its context past that is not reported.
// CallEnded also waits until the call's own goroutine (menu and transfer) has
// returned, so a TransferResult reported after the caller hung up (abandoned,
// cancelled) still comes before it. Nothing for a call is delivered after its
// CallEnded.
//
// SIPResponse, DTMF, RTPStats, Draining and ActiveCalls are not part of that order.
type Observer interface {
	// CallStarted: an INVITE was admitted (trusted, well-formed, under the call
	// cap) and the call is in the registry; its lookup starts now. The snapshot
	// carries the caller's full number: treat it as confidential.
	CallStarted(call CallSnapshot)
	// LookupDone: the caller lookup finished (found or not); took is measured from
	// CallStarted.
	LookupDone(callID string, res lookup.Result, took time.Duration)
	// Intent: a transfer intent arrived for the call, from source.
	Intent(callID string, intent routing.Intent, source IntentSource)
	// Decision: routing decided what the last intent means.
	Decision(callID string, dec routing.Decision)
	// TransferResult: a transfer attempt ended. outcome is a short snake_case word:
	// success, declined, no_answer, busy, timeout, failed, rejected, fallback,
	// cancelled or unavailable (the metrics' known set). detail is a short,
	// confidential-data free explanation ("486 Busy Here", "refer rejected 405").
	TransferResult(callID string, mode routing.Mode, outcome, detail string)
	// CallEnded: the call is torn down (BYE sent or received, media closed, ports
	// released, gone from the registry).
	CallEnded(callID string, end CallEnd)
	// SIPResponse: we sent a response with code to a request of method ("INVITE").
	// Retransmissions of our 2xx are not counted again. The 200 to a CANCEL and
	// the 487 to its INVITE, which sipgo sends itself, are reported too.
	SIPResponse(method string, code int)
	// DTMF: the call's menu received a digit from source ("rfc4733" or "info").
	// The digit itself is not passed on.
	DTMF(callID string, source string)
	// RTPStats: the counters of one of the call's RTP sessions, when it closes
	// (the caller's leg at teardown; transfer legs report theirs too).
	RTPStats(callID string, st media.Stats)
	// Draining: the server started (true) or stopped draining.
	Draining(draining bool)
	// ActiveCalls: the number of live calls changed (ringing ones included).
	ActiveCalls(n int)
}

// NopObserver ignores every notification. Embed it in an Observer that cares only
// about some of them.
type NopObserver struct{}

func (NopObserver) CallStarted(CallSnapshot)                            {}
func (NopObserver) LookupDone(string, lookup.Result, time.Duration)     {}
func (NopObserver) Intent(string, routing.Intent, IntentSource)         {}
func (NopObserver) Decision(string, routing.Decision)                   {}
func (NopObserver) TransferResult(string, routing.Mode, string, string) {}
func (NopObserver) CallEnded(string, CallEnd)                           {}
func (NopObserver) SIPResponse(string, int)                             {}
func (NopObserver) DTMF(string, string)                                 {}
func (NopObserver) RTPStats(string, media.Stats)                        {}
func (NopObserver) Draining(bool)                                       {}
func (NopObserver) ActiveCalls(int)                                     {}

// IntentSource says where a transfer intent came from. The zero value means
// unknown.
type IntentSource uint8

const (
	IntentSourceUnknown   IntentSource = iota
	IntentSourceMenu                   // a menu digit (RFC 4733 or SIP INFO)
	IntentSourceExtension              // an extension dialled from the menu
	IntentSourceAPI                    // the HTTP control API (a voice agent)
	IntentSourceAgent                  // a REFER from the agent leg (agent.go)
)

var intentSourceNames = [...]string{"unknown", "menu", "extension", "api", "agent"}

func (s IntentSource) String() string {
	if int(s) < len(intentSourceNames) {
		return intentSourceNames[s]
	}
	return "unknown"
}

// MarshalText renders the source name for JSON and logs.
func (s IntentSource) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// CallEnd describes a finished call for Observer.CallEnded.
type CallEnd struct {
	Reason EndReason
	// Outcome is the call's outcome, a short snake_case word from the metrics'
	// call outcome set: "transferred" after a TransferResult with outcome
	// "success" (or a transferred or callee_bye end), an outcome set explicitly
	// by the transfer code (setCallOutcome, e.g. "message"), otherwise derived
	// from Reason: caller_cancel → abandoned, caller_bye → caller_hangup,
	// rejected → rejected, no_ack/rtp_timeout/session_expired → timeout, drain →
	// drained, menu_goodbye/hangup/shutdown/our_bye → hangup, anything else →
	// failed.
	Outcome  string
	Started  time.Time // INVITE admitted (the server's clock)
	Answered time.Time // our 2xx sent; zero when never answered
	Ended    time.Time
	Duration time.Duration // Started to Ended
	Talk     time.Duration // Answered to Ended; 0 when never answered
}

// WithObserver sets the Observer (default: none; see Observer for its contract).
func WithObserver(o Observer) Option { return func(s *Server) { s.obs.observer = o } }

// lookupEndWait bounds how long the end of a call waits for its cancelled lookup
// so that LookupDone is still delivered before CallEnded.
const lookupEndWait = time.Second

// serverObs is the Server's observability state (one field of Server).
type serverObs struct {
	observer Observer      // nil: no observer
	tracer   MessageTracer // nil: SIP trace not available (trace.go)
	traceOn  atomic.Bool   // the run-time trace switch
	activeMu sync.Mutex    // serializes ActiveCalls so the last value wins
}

// callObs orders one call's notifications (one field of call). mu is held while
// the observer is called, so a call's notifications never overlap; lock order is
// callObs.mu before call.mu, so call the notify methods without c.mu held.
type callObs struct {
	mu         sync.Mutex
	lookupAt   time.Time // CallStarted (monotonic), for LookupDone's took
	lookupWant bool      // CallStarted went out, so LookupDone is due
	lookupSent bool
	ended      bool
	held       []func(Observer) // waiting for LookupDone
	transfer   string           // last TransferResult outcome
	outcome    string           // explicit call outcome (setCallOutcome)
}

// observe returns the Observer, never nil. Code in package sip that has no call at
// hand (the transfer code's own responses, say) reports through it directly:
// s.observe().SIPResponse("NOTIFY", 200).
func (s *Server) observe() Observer {
	if s.obs.observer == nil {
		return NopObserver{}
	}
	return s.obs.observer
}

// notifyStarted reports a new call (before its lookup is spawned) and the new
// number of live calls.
func (s *Server) notifyStarted(c *call) {
	o := &c.obs
	o.mu.Lock()
	o.lookupWant = true
	o.lookupAt = time.Now()
	s.observe().CallStarted(c.snapshot())
	o.mu.Unlock()
	s.notifyActive()
}

// notifyActive reports the registry's call count.
func (s *Server) notifyActive() {
	s.obs.activeMu.Lock()
	defer s.obs.activeMu.Unlock()
	s.observe().ActiveCalls(s.reg.Count())
}

// notifyResponse reports a response we sent (first transmission only).
func (s *Server) notifyResponse(method string, code int) {
	s.observe().SIPResponse(method, code)
}

// notifyCancelled reports the two responses sipgo sends by itself for a CANCEL
// that matches our INVITE transaction: 200 to the CANCEL, 487 to the INVITE
// (RFC 3261 §9.2). It is registered with the transaction's OnCancel.
func (s *Server) notifyCancelled() {
	obs := s.observe()
	obs.SIPResponse("CANCEL", 200)
	obs.SIPResponse("INVITE", 487)
}

// setDraining sets the draining flag and reports a change.
func (s *Server) setDraining(on bool) {
	if s.draining.Swap(on) != on {
		s.observe().Draining(on)
	}
}

// Draining reports whether the server is draining (Drain or Close was called):
// new INVITEs and out-of-dialog OPTIONS get 503.
func (s *Server) Draining() bool { return s.draining.Load() }

// ReportTransferResult reports the result of a transfer attempt on call callID
// (see Observer.TransferResult) for a Transferer outside package sip; code inside
// the package calls c.notifyTransferResult. False when there is no such call.
func (s *Server) ReportTransferResult(callID string, mode routing.Mode, outcome, detail string) bool {
	c := s.reg.call(callID)
	if c == nil {
		return false
	}
	c.notifyTransferResult(mode, outcome, detail)
	return true
}

// emitOrdered delivers one of the call's ordered notifications: at once after
// LookupDone, held back before it, dropped after CallEnded.
func (c *call) emitOrdered(f func(Observer)) {
	o := &c.obs
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case o.ended:
	case o.lookupWant && !o.lookupSent:
		o.held = append(o.held, f)
	default:
		f(c.srv.observe())
	}
}

// notifyLookup reports the lookup result, then what was held back for it. Called
// by runLookup before it closes c.lookup.
func (c *call) notifyLookup(res lookup.Result) {
	o := &c.obs
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ended || o.lookupSent {
		return
	}
	o.lookupSent = true
	obs := c.srv.observe()
	obs.LookupDone(c.id, res, time.Since(o.lookupAt))
	for _, f := range o.held {
		f(obs)
	}
	o.held = nil
}

// notifyIntent reports a transfer intent. The menu calls it with
// IntentSourceMenu; the HTTP transfer path must call it with IntentSourceAPI (an
// extension dialled from the menu: IntentSourceExtension) before deciding.
func (c *call) notifyIntent(intent routing.Intent, source IntentSource) {
	c.emitOrdered(func(obs Observer) { obs.Intent(c.id, intent, source) })
}

// menuIntentSource is the source of an intent served by the menu: an extension
// dialled there, or a menu key.
func menuIntentSource(intent routing.Intent) IntentSource {
	if intent.Kind == routing.IntentExtension {
		return IntentSourceExtension
	}
	return IntentSourceMenu
}

// notifyDecision reports a routing decision. serveIntent calls it for every
// decision it gets; a path that asks the Router outside serveIntent (a fallback
// rule, say) calls it itself.
func (c *call) notifyDecision(dec routing.Decision) {
	c.emitOrdered(func(obs Observer) { obs.Decision(c.id, dec) })
}

// notifyTransferResult reports the result of a transfer attempt: the transfer
// code calls it once per attempt (a REFER that falls back to a bridge reports the
// REFER's result, e.g. "fallback", and later the bridge's). outcome "success"
// makes the call's outcome "transferred". See Observer.TransferResult for the
// vocabulary.
func (c *call) notifyTransferResult(mode routing.Mode, outcome, detail string) {
	c.obs.mu.Lock()
	c.obs.transfer = outcome
	c.obs.mu.Unlock()
	c.emitOrdered(func(obs Observer) { obs.TransferResult(c.id, mode, outcome, detail) })
}

// notifyRecordOutcome reports a call record outcome set by the transfer code as
// the Observer's vocabulary: referred, bridged and redirected are a transfer
// "success"; declined, no_answer, busy and failed keep their names; abandoned
// (the caller hung up during the transfer) is "cancelled"; message sets the call
// outcome "message" and reports no transfer result. One call per setOutcome:
// c.notifyRecordOutcome(mode, o), without c.mu held.
func (c *call) notifyRecordOutcome(mode routing.Mode, o records.Outcome) {
	var outcome string
	switch o {
	case records.OutcomeReferred, records.OutcomeBridged, records.OutcomeRedirected:
		outcome = "success"
	case records.OutcomeDeclined, records.OutcomeNoAnswer, records.OutcomeBusy, records.OutcomeFailed:
		outcome = o.String()
	case records.OutcomeAbandoned:
		outcome = "cancelled"
	case records.OutcomeMessage:
		c.setCallOutcome("message")
		return
	default:
		return
	}
	c.notifyTransferResult(mode, outcome, o.String())
}

// setCallOutcome sets the call outcome CallEnded reports, overriding the derived
// one (see CallEnd.Outcome): the transfer code sets "message" when the caller left
// a message, say. Use words from the metrics' call outcome set.
func (c *call) setCallOutcome(outcome string) {
	c.obs.mu.Lock()
	c.obs.outcome = outcome
	c.obs.mu.Unlock()
}

// notifyDTMF reports a digit the call received.
func (c *call) notifyDTMF(source string) { c.srv.observe().DTMF(c.id, source) }

// notifyRTPStats reports one RTP session's counters.
func (c *call) notifyRTPStats(st media.Stats) { c.srv.observe().RTPStats(c.id, st) }

// notifyEnded reports the end of the call (after teardown, before c.done closes)
// and the new number of live calls. teardown gives a lookup still running (it was
// cancelled with the call) up to lookupEndWait to report first.
func (c *call) notifyEnded(reason EndReason) {
	o := &c.obs
	c.mu.Lock()
	end := CallEnd{Reason: reason, Started: c.started, Answered: c.answered, Ended: c.srv.now()}
	c.mu.Unlock()
	end.Duration = end.Ended.Sub(end.Started)
	if !end.Answered.IsZero() {
		end.Talk = end.Ended.Sub(end.Answered)
	}
	o.mu.Lock()
	if !o.ended {
		c.emitEndedLocked(end)
	}
	o.mu.Unlock()
	c.srv.notifyActive()
}

// emitEndedLocked delivers what is still held back, then CallEnded with the
// outcome as it stands now. c.obs.mu must be held.
func (c *call) emitEndedLocked(end CallEnd) {
	o := &c.obs
	obs := c.srv.observe()
	for _, f := range o.held { // the lookup never reported: keep the rest
		f(obs)
	}
	o.held = nil
	o.ended = true
	end.Outcome = callOutcome(end.Reason, o.transfer, o.outcome)
	obs.CallEnded(c.id, end)
}

// callOutcome derives the call outcome (see CallEnd.Outcome).
func callOutcome(reason EndReason, transfer, explicit string) string {
	switch {
	case explicit != "":
		return explicit
	case transfer == "success", reason == EndTransferred, reason == EndCalleeBye:
		return "transferred" // EndCalleeBye: the destination hung up a bridged call
	}
	switch reason {
	case EndCallerCancel:
		return "abandoned"
	case EndCallerBye:
		return "caller_hangup"
	case EndRejected:
		return "rejected"
	case EndNoAck, EndRTPTimeout, EndSessionExpired:
		return "timeout"
	case EndDrain:
		return "drained"
	case EndMenuGoodbye, EndHangup, EndShutdown, EndOurBye:
		return "hangup"
	}
	return "failed"
}

// maskNumber hides a phone number in info-level logs except its last four
// characters ("+12175552171" → "***2171"); four characters or fewer become "***",
// an empty (withheld) number stays empty. Full numbers appear only at debug level.
func maskNumber(n string) string {
	if n == "" {
		return ""
	}
	r := []rune(n)
	if len(r) <= 4 {
		return "***"
	}
	return "***" + string(r[len(r)-4:])
}
