package sip

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	gosip "github.com/emiago/sipgo/sip"

	"github.com/matterline/matterline/media"
)

// Sentinel errors of package sip. Each maps to one SIP response and one end-of-call
// reason in mapError.
var (
	ErrUntrusted        = errors.New("sip: request from an untrusted source")
	ErrOverCapacity     = errors.New("sip: concurrent call limit reached")
	ErrRateLimited      = errors.New("sip: too many new calls from this source")
	ErrDraining         = errors.New("sip: server is draining")
	ErrClosed           = errors.New("sip: server closed")
	ErrNoSDP            = errors.New("sip: invite without sdp offer")
	ErrBadRequest       = errors.New("sip: malformed request")
	ErrCallNotFound     = errors.New("sip: no such call")
	ErrMethodNotAllowed = errors.New("sip: method not allowed")
	ErrNoAck            = errors.New("sip: no ack for 2xx response")
	ErrRequestPending   = errors.New("sip: another offer is pending")
	ErrUnsupportedBody  = errors.New("sip: unsupported message body")
)

// IntervalTooSmallError is an RFC 4028 §6 session interval below our Min-SE: the
// request is rejected with 422 and a Min-SE header.
type IntervalTooSmallError struct {
	Requested time.Duration
	MinSE     time.Duration
}

func (e *IntervalTooSmallError) Error() string {
	return fmt.Sprintf("sip: session interval %s below min-se %s", e.Requested, e.MinSE)
}

// BadExtensionError is a Require option we do not support (RFC 3261 §8.2.2.3: 420
// with Unsupported).
type BadExtensionError struct {
	Options []string
}

func (e *BadExtensionError) Error() string {
	return fmt.Sprintf("sip: unsupported extensions %s", strings.Join(e.Options, ", "))
}

// EndReason says why a call ended; stable for logs and call records. The zero value
// means unknown.
type EndReason uint8

const (
	EndUnknown        EndReason = iota
	EndCallerBye                // the caller sent BYE
	EndCallerCancel             // the caller sent CANCEL before the answer
	EndRejected                 // we answered the INVITE with a final non-2xx response
	EndNoAck                    // no ACK for our 2xx within 64*T1
	EndRTPTimeout               // no RTP from the caller for RTPInactivity
	EndSessionExpired           // RFC 4028 session expired without refresh
	EndMenuGoodbye              // menu attempts exhausted: goodbye + BYE
	EndHangup                   // hung up by the API (Hangup, HangupAll)
	EndDrain                    // drain timeout reached
	EndShutdown                 // server closed
	EndTransferred              // the call was handed to a transfer executor and left us
	EndError                    // internal failure
	EndCalleeBye                // the transfer destination hung up a bridged call
	EndOurBye                   // we ended the call: goodbye after unavailable handling, message taken
)

var endReasonNames = [...]string{"unknown", "caller_bye", "caller_cancel", "rejected", "no_ack",
	"rtp_timeout", "session_expired", "menu_goodbye", "hangup", "drain", "shutdown",
	"transferred", "error", "callee_bye", "our_bye"}

func (r EndReason) String() string {
	if int(r) < len(endReasonNames) {
		return endReasonNames[r]
	}
	return "unknown"
}

// MarshalText renders the reason name for JSON and logs.
func (r EndReason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// sipStatus is the response one error turns into.
type sipStatus struct {
	Code     int
	Phrase   string
	Warning  string // RFC 3261 §20.43 Warning text (code 399 unless set below)
	WarnCode int
	End      EndReason
}

// mapError maps any error (wrapped too) to the SIP response that rejects the request
// that caused it and to the reason the call ends. It is the one place where errors
// become SIP (STYLE 7).
func mapError(err error) sipStatus {
	var tooSmall *IntervalTooSmallError
	var badExt *BadExtensionError
	switch {
	case err == nil:
		return sipStatus{Code: 200, Phrase: "OK"}
	case errors.Is(err, ErrUntrusted):
		return sipStatus{Code: 403, Phrase: "Forbidden", End: EndRejected}
	case errors.Is(err, ErrOverCapacity), errors.Is(err, ErrRateLimited):
		return sipStatus{Code: 503, Phrase: "Service Unavailable", End: EndRejected}
	case errors.Is(err, ErrDraining), errors.Is(err, ErrClosed):
		return sipStatus{Code: 503, Phrase: "Service Unavailable", End: EndRejected}
	case errors.Is(err, media.ErrNoPorts):
		return sipStatus{Code: 503, Phrase: "Service Unavailable", End: EndError}
	case errors.Is(err, ErrNoSDP):
		return sipStatus{Code: 488, Phrase: "Not Acceptable Here", WarnCode: 399, Warning: "late offer not supported, send sdp in invite", End: EndRejected}
	case errors.Is(err, media.ErrNoCommonCodec):
		return sipStatus{Code: 488, Phrase: "Not Acceptable Here", WarnCode: 305, Warning: "Incompatible media format", End: EndRejected}
	case errors.Is(err, media.ErrBadSDP):
		return sipStatus{Code: 488, Phrase: "Not Acceptable Here", WarnCode: 399, Warning: "malformed sdp", End: EndRejected}
	case errors.As(err, &tooSmall):
		return sipStatus{Code: 422, Phrase: "Session Interval Too Small", End: EndRejected}
	case errors.As(err, &badExt):
		return sipStatus{Code: 420, Phrase: "Bad Extension", End: EndRejected}
	case errors.Is(err, ErrBadRequest):
		return sipStatus{Code: 400, Phrase: "Bad Request", End: EndRejected}
	case errors.Is(err, ErrCallNotFound):
		return sipStatus{Code: 481, Phrase: "Call/Transaction Does Not Exist", End: EndRejected}
	case errors.Is(err, ErrMethodNotAllowed):
		return sipStatus{Code: 405, Phrase: "Method Not Allowed", End: EndRejected}
	case errors.Is(err, ErrRequestPending):
		return sipStatus{Code: 491, Phrase: "Request Pending", End: EndRejected}
	case errors.Is(err, ErrUnsupportedBody):
		return sipStatus{Code: 415, Phrase: "Unsupported Media Type", End: EndRejected}
	case errors.Is(err, gosip.ErrTransactionCanceled):
		return sipStatus{Code: 487, Phrase: "Request Terminated", End: EndCallerCancel}
	case errors.Is(err, ErrNoAck):
		return sipStatus{Code: 408, Phrase: "Request Timeout", End: EndNoAck}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, gosip.ErrTransactionTimeout):
		return sipStatus{Code: 408, Phrase: "Request Timeout", End: EndError}
	case errors.Is(err, context.Canceled):
		return sipStatus{Code: 487, Phrase: "Request Terminated", End: EndShutdown}
	}
	return sipStatus{Code: 500, Phrase: "Server Internal Error", End: EndError}
}
