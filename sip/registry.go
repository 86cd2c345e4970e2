package sip

import (
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/matterline/matterline/lookup"
	"github.com/matterline/matterline/routing"
)

// CallState is where a call is in its life. The zero value means unknown.
type CallState uint8

const (
	StateUnknown      CallState = iota
	StateRinging                // INVITE received, not answered yet
	StateAnswered               // 200 OK sent, waiting for the ACK
	StateInMenu                 // confirmed; the menu is playing or waiting for a digit
	StateRouting                // an intent is being decided or served
	StateTransferring           // handed to the transfer executor
	StateHeld                   // the caller put the call on hold (re-INVITE sendonly/inactive)
	StateEnding                 // teardown in progress (BYE, media, ports)
	StateEnded                  // gone
	StateBridged                // a transfer bridged the caller to the destination
	StateAgent                  // a voice agent has the call: a SIP leg (agent.go) or a media stream (agent_stream.go)
)

var callStateNames = [...]string{"unknown", "ringing", "answered", "in_menu", "routing",
	"transferring", "held", "ending", "ended", "bridged", "agent"}

func (s CallState) String() string {
	if int(s) < len(callStateNames) {
		return callStateNames[s]
	}
	return "unknown"
}

// MarshalText renders the state name for JSON.
func (s CallState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// CallSnapshot is a copy of a call's public state.
type CallSnapshot struct {
	ID         string           `json:"id"`
	SIPCallID  string           `json:"sip_call_id"`
	Caller     string           `json:"caller"`
	Callee     string           `json:"callee"`
	State      CallState        `json:"state"`
	Started    time.Time        `json:"started"`
	Answered   time.Time        `json:"answered,omitzero"`
	Lookup     lookup.Result    `json:"lookup"`
	LookupDone bool             `json:"lookup_done"`
	Intents    []routing.Intent `json:"intents,omitempty"`
	EndReason  EndReason        `json:"end_reason,omitempty"`
	// Decision is the last routing decision on the call; nil before the first.
	Decision *routing.Decision `json:"decision,omitempty"`
}

// Registry holds the live calls of a Server. Safe for concurrent use.
type Registry struct {
	mu       sync.Mutex
	byID     map[string]*call
	byDialog map[string]*call
	// unconfirmed counts, per source address, the calls not yet confirmed
	// by the caller's ACK (see Server.holdsUnconfirmed): kept as calls come,
	// are confirmed and go, so the check at each INVITE does not scan every
	// call (it did: 5-13 % of CPU once half the slots were taken).
	unconfirmed map[netip.Addr]int
}

func newRegistry() *Registry {
	return &Registry{byID: map[string]*call{}, byDialog: map[string]*call{}, unconfirmed: map[netip.Addr]int{}}
}

// List returns snapshots of all live calls, oldest first.
func (r *Registry) List() []CallSnapshot {
	r.mu.Lock()
	calls := make([]*call, 0, len(r.byID))
	for _, c := range r.byID {
		calls = append(calls, c)
	}
	r.mu.Unlock()
	out := make([]CallSnapshot, 0, len(calls))
	for _, c := range calls {
		out = append(out, c.snapshot())
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Started.Equal(out[j].Started) {
			return out[i].ID < out[j].ID
		}
		return out[i].Started.Before(out[j].Started)
	})
	return out
}

// Get returns the snapshot of call id.
func (r *Registry) Get(id string) (CallSnapshot, bool) {
	c := r.call(id)
	if c == nil {
		return CallSnapshot{}, false
	}
	return c.snapshot(), true
}

// Count is the number of live calls (ringing ones included).
func (r *Registry) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.byID)
}

func (r *Registry) call(id string) *call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byID[id]
}

func (r *Registry) all() []*call {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*call, 0, len(r.byID))
	for _, c := range r.byID {
		out = append(out, c)
	}
	return out
}

// reserve adds c when fewer than max calls are live.
func (r *Registry) reserve(c *call, max int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.byID) >= max {
		return ErrOverCapacity
	}
	r.byID[c.id] = c
	r.unconfirmed[c.sourceIP]++
	c.unconfirmed = true
	return nil
}

// confirmed notes that c's caller confirmed it (the ACK of our 2xx came).
func (r *Registry) confirmed(c *call) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unconfirm(c)
}

// unconfirm takes c out of its source's unconfirmed count, once. Needs r.mu.
func (r *Registry) unconfirm(c *call) {
	if !c.unconfirmed {
		return
	}
	c.unconfirmed = false
	if n := r.unconfirmed[c.sourceIP] - 1; n > 0 {
		r.unconfirmed[c.sourceIP] = n
	} else {
		delete(r.unconfirmed, c.sourceIP)
	}
}

// unconfirmedFrom is how many calls from src are not confirmed yet.
func (r *Registry) unconfirmedFrom(src netip.Addr) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.unconfirmed[src]
}

// setDialog indexes c by its dialog id; false when c already left the registry
// (ended meanwhile), so no stale entry is left behind.
func (r *Registry) setDialog(dialogID string, c *call) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byID[c.id] != c {
		return false
	}
	c.dialogID = dialogID // guarded by r.mu
	r.byDialog[dialogID] = c
	return true
}

func (r *Registry) byDialogID(dialogID string) *call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byDialog[dialogID]
}

func (r *Registry) remove(c *call) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byID[c.id] == c {
		delete(r.byID, c.id)
		r.unconfirm(c)
	}
	if c.dialogID != "" && r.byDialog[c.dialogID] == c {
		delete(r.byDialog, c.dialogID)
	}
}
