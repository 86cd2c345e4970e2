package writeback

import (
	"fmt"
	"strings"
)

// Kind is what an outbox item writes to Clio. The zero value means unknown.
type Kind uint8

const (
	KindUnknown       Kind = iota
	KindCommunication      // a PhoneCommunication on the matter
	KindTimeEntry          // a draft TimeEntry activity for the staff member who took the call
	KindTask               // a callback Task for the responsible staff member
	KindDocument           // the recorded message as a Document on the matter
)

var kindNames = [...]string{KindUnknown: "unknown", KindCommunication: "communication",
	KindTimeEntry: "time_entry", KindTask: "task", KindDocument: "document"}

// Kinds lists the known kinds in sending order.
func Kinds() []Kind { return []Kind{KindCommunication, KindTimeEntry, KindTask, KindDocument} }

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Resource is the Clio resource the kind writes (for permissions and errors).
func (k Kind) Resource() string {
	switch k {
	case KindCommunication:
		return "communications"
	case KindTimeEntry:
		return "activities"
	case KindTask:
		return "tasks"
	case KindDocument:
		return "documents"
	}
	return ""
}

// ParseKind is the inverse of String.
func ParseKind(s string) (Kind, error) {
	for i, n := range kindNames {
		if i > 0 && n == s {
			return Kind(i), nil
		}
	}
	return KindUnknown, fmt.Errorf("writeback: unknown kind %q (want %s)", s, strings.Join(kindNames[1:], ", "))
}

func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// State is where an outbox item is. The zero value means unknown.
type State uint8

const (
	StateUnknown State = iota
	StatePending       // waiting to be sent (or to be retried)
	StateDone          // written to Clio; ClioID is set
	StateFailed        // given up; Error says why (`clio outbox retry ID` sends it again)
)

var stateNames = [...]string{StateUnknown: "unknown", StatePending: "pending", StateDone: "done", StateFailed: "failed"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

// ParseState is the inverse of String.
func ParseState(s string) (State, error) {
	for i, n := range stateNames {
		if i > 0 && n == s {
			return State(i), nil
		}
	}
	return StateUnknown, fmt.Errorf("writeback: unknown state %q (want pending, done or failed)", s)
}

func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
