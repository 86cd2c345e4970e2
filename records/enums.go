package records

import (
	"fmt"
	"strings"
)

// Outcome is how a call's transfer request ended. The zero value means unknown (the
// call ended before an outcome was set). A call still up has OutcomeInProgress; one
// that a crash of matterline cut off has OutcomeInterrupted.
type Outcome uint8

const (
	OutcomeUnknown     Outcome = iota
	OutcomeNone                // the caller never asked for a transfer (hung up in the menu, goodbye)
	OutcomeReferred            // cold transfer: REFER accepted and a 2xx sipfrag received
	OutcomeBridged             // warm transfer or bridged fallback: the destination answered and was bridged
	OutcomeDeclined            // the destination declined (603, or rejected the whisper)
	OutcomeNoAnswer            // the destination rang until the ring timeout
	OutcomeBusy                // the destination answered 486/600 busy
	OutcomeFailed              // the transfer failed otherwise (4xx/5xx, REFER and fallback failed, timeout)
	OutcomeMessage             // the caller left a message
	OutcomeAbandoned           // the caller hung up while the transfer was under way
	OutcomeRedirected          // sip.mode redirect: the INVITE was answered 302 to the destination
	OutcomeInProgress          // the call has not ended yet: the row written at the INVITE
	OutcomeInterrupted         // matterline stopped without ending the call (crash, kill -9, power loss)
)

var outcomeNames = [...]string{
	OutcomeUnknown:     "unknown",
	OutcomeNone:        "none",
	OutcomeReferred:    "referred",
	OutcomeBridged:     "bridged",
	OutcomeDeclined:    "declined",
	OutcomeNoAnswer:    "no_answer",
	OutcomeBusy:        "busy",
	OutcomeFailed:      "failed",
	OutcomeMessage:     "message",
	OutcomeAbandoned:   "abandoned",
	OutcomeRedirected:  "redirected",
	OutcomeInProgress:  "in_progress",
	OutcomeInterrupted: "interrupted",
}

// Outcomes lists every known outcome except unknown, in declaration order.
func Outcomes() []Outcome {
	out := make([]Outcome, 0, len(outcomeNames)-1)
	for i := 1; i < len(outcomeNames); i++ {
		out = append(out, Outcome(i))
	}
	return out
}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// ParseOutcome is the inverse of String. "unknown" and "" give OutcomeUnknown; any
// other unrecognized text is an error.
func ParseOutcome(s string) (Outcome, error) {
	i, err := parseEnum(outcomeNames[:], s, "outcome")
	return Outcome(i), err
}

func (o Outcome) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

func (o *Outcome) UnmarshalText(b []byte) error {
	v, err := ParseOutcome(string(b))
	if err != nil {
		return err
	}
	*o = v
	return nil
}

// EndReason is why a call ended. The zero value means unknown. The text forms are a
// superset of sip.EndReason's, so the call path converts with
// ParseEndReason(reason.String()); callee_bye and our_bye are the transfer's.
type EndReason uint8

const (
	EndUnknown        EndReason = iota
	EndCallerBye                // the caller hung up (BYE from the caller's side)
	EndCallerCancel             // the caller cancelled before the call was answered
	EndCalleeBye                // the transfer destination hung up a bridged call
	EndOurBye                   // matterline ended the call: transfer done, goodbye, message taken
	EndRejected                 // the INVITE got a final non-2xx answer (403, 503, 302 redirect)
	EndNoAck                    // no ACK came for our 2xx
	EndRTPTimeout               // no RTP for media.rtp_timeout
	EndSessionExpired           // the RFC 4028 session timer expired without a refresh
	EndMenuGoodbye              // too many failed menu attempts: goodbye
	EndHangup                   // hung up through the HTTP API
	EndDrain                    // the drain timeout was reached on shutdown
	EndShutdown                 // the server closed
	EndTransferred              // the call left matterline by a transfer (REFER completed)
	EndError                    // an internal or protocol error ended the call
	EndInterrupted              // matterline stopped without ending the call; the end time is unknown
)

var endReasonNames = [...]string{
	EndUnknown:        "unknown",
	EndCallerBye:      "caller_bye",
	EndCallerCancel:   "caller_cancel",
	EndCalleeBye:      "callee_bye",
	EndOurBye:         "our_bye",
	EndRejected:       "rejected",
	EndNoAck:          "no_ack",
	EndRTPTimeout:     "rtp_timeout",
	EndSessionExpired: "session_expired",
	EndMenuGoodbye:    "menu_goodbye",
	EndHangup:         "hangup",
	EndDrain:          "drain",
	EndShutdown:       "shutdown",
	EndTransferred:    "transferred",
	EndError:          "error",
	EndInterrupted:    "interrupted",
}

// EndReasons lists every known end reason except unknown, in declaration order.
func EndReasons() []EndReason {
	out := make([]EndReason, 0, len(endReasonNames)-1)
	for i := 1; i < len(endReasonNames); i++ {
		out = append(out, EndReason(i))
	}
	return out
}

func (r EndReason) String() string {
	if int(r) < len(endReasonNames) {
		return endReasonNames[r]
	}
	return "unknown"
}

// ParseEndReason is the inverse of String. "unknown" and "" give EndUnknown; any
// other unrecognized text is an error.
func ParseEndReason(s string) (EndReason, error) {
	i, err := parseEnum(endReasonNames[:], s, "end reason")
	return EndReason(i), err
}

func (r EndReason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

func (r *EndReason) UnmarshalText(b []byte) error {
	v, err := ParseEndReason(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

func parseEnum(names []string, s, what string) (int, error) {
	if s == "" {
		return 0, nil
	}
	for i, n := range names {
		if n == s {
			return i, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown %s %q (want %s)", ErrInvalid, what, s, strings.Join(names[1:], ", "))
}
