package phone

import "time"

// EventKind says what happened. The zero value is unknown.
type EventKind uint8

// Event kinds.
const (
	EventUnknown        EventKind = iota
	EventInviteSent               // the Caller sent an INVITE
	EventResponse                 // a provisional response arrived (Detail: "180 Ringing")
	EventAnswered                 // the Caller got the 2xx and sent the ACK
	EventRejected                 // the Caller got a final non-2xx response
	EventInviteReceived           // the Callee got an INVITE (Detail: From, P-Asserted-Identity, Diversion)
	EventRinging                  // the Callee sent 180 Ringing
	EventAnswerSent               // the Callee sent 200 OK and got the ACK
	EventCancelled                // the far end cancelled the INVITE before the answer
	EventDTMFSent                 // this phone pressed a key (Detail: key and method)
	EventDTMFReceived             // a key press arrived (RFC 4733 or INFO)
	EventReinvite                 // a re-INVITE or UPDATE arrived and was answered
	EventRefer                    // a REFER arrived (Detail: Refer-To and the answer)
	EventNotify                   // a NOTIFY arrived (Detail: Event and the first body line)
	EventByeSent                  // this phone hung up
	EventByeReceived              // the far end hung up
	EventEnded                    // the call's media is closed (Detail: why)
)

var eventNames = [...]string{"unknown", "invite_sent", "response", "answered", "rejected",
	"invite_received", "ringing", "answer_sent", "cancelled", "dtmf_sent", "dtmf_received",
	"reinvite", "refer", "notify", "bye_sent", "bye_received", "ended"}

// String returns the kind in snake_case ("invite_sent").
func (k EventKind) String() string {
	if int(k) < len(eventNames) {
		return eventNames[k]
	}
	return "unknown"
}

// Event is one step of a phone's life.
type Event struct {
	Time   time.Time
	Phone  string // the phone's Name ("caller", "attorney")
	Kind   EventKind
	CallID string // SIP Call-ID
	Detail string // human-readable, e.g. "180 Ringing"
}
