// Package lookup holds the result of finding a caller in the practice-management
// system. It is the neutral type shared by the producer (clio), the consumer that
// decides routes (routing) and the one that carries it on a call (sip), so none of
// them has to import another.
package lookup

import "encoding/json"

// Status says how a caller lookup ended. The zero value means unknown (no lookup ran).
type Status uint8

const (
	StatusUnknown      Status = iota // no lookup was made or it has not finished
	StatusFound                      // exactly one contact (or several resolving to one staff member)
	StatusNotFound                   // no contact has the caller's full number, or the caller ID is withheld
	StatusAmbiguous                  // several contacts on the number with different staff
	StatusError                      // Clio failed (timeout, 5xx, 429, bad JSON, circuit open)
	StatusUnconfigured               // no Clio connection is configured
)

var statusNames = [...]string{"", "found", "not_found", "ambiguous", "error", "unconfigured"}

func (s Status) String() string {
	if int(s) < len(statusNames) && s != StatusUnknown {
		return statusNames[s]
	}
	return "unknown"
}

// ParseStatus is the inverse of String; unknown text gives StatusUnknown.
func ParseStatus(s string) Status {
	for i, n := range statusNames {
		if n != "" && n == s {
			return Status(i)
		}
	}
	return StatusUnknown
}

func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

func (s *Status) UnmarshalText(b []byte) error { *s = ParseStatus(string(b)); return nil }

// Contact is the Clio contact (person or company) the caller was matched to.
type Contact struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

// Matter is the matter chosen for the caller.
type Matter struct {
	ID            int64  `json:"id"`
	DisplayNumber string `json:"display_number"`
}

// Staff is the Clio user responsible for the chosen matter.
type Staff struct {
	ID    int64  `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email,omitempty"`
	Phone string `json:"phone,omitempty"`
}

// Result is what a caller lookup found. Contact, Matter and Staff are set only as far
// as the lookup got (a contact with no open matter has Contact but no Matter).
type Result struct {
	Status Status `json:"status"`
	// Number is the caller's number normalized to E.164 digits with '+', or empty.
	Number  string   `json:"number,omitempty"`
	Contact *Contact `json:"contact,omitempty"`
	Matter  *Matter  `json:"matter,omitempty"`
	Staff   *Staff   `json:"responsible_staff,omitempty"`
	// Reason is a short machine-friendly explanation ("no_open_matter", "circuit_open", ...).
	Reason string `json:"reason,omitempty"`
	// Cached is true when the result came from the local cache.
	Cached bool `json:"cached,omitempty"`
	// Source is where the answer came from: the local phone index, the lookup
	// cache or Clio itself (unknown when no lookup ran, e.g. a withheld number).
	Source Source `json:"source,omitzero"`
}

// Source is where a lookup's answer came from. The zero value means unknown.
type Source uint8

const (
	SourceUnknown Source = iota
	SourceIndex          // the local phone index (clio.index), no request to Clio
	SourceCache          // the lookup cache, fresh or stale
	SourceClio           // a request to Clio
)

var sourceNames = [...]string{"", "index", "cache", "clio"}

func (s Source) String() string {
	if int(s) < len(sourceNames) && s != SourceUnknown {
		return sourceNames[s]
	}
	return "unknown"
}

// ParseSource is the inverse of String; unknown text gives SourceUnknown.
func ParseSource(s string) Source {
	for i, n := range sourceNames {
		if n != "" && n == s {
			return Source(i)
		}
	}
	return SourceUnknown
}

func (s Source) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

func (s *Source) UnmarshalText(b []byte) error { *s = ParseSource(string(b)); return nil }

// Contract is the exact `lookup` object of DESIGN.md's `rules test --json` and
// `clio lookup --json` output: status, contact{id,name}, matter{id,display_number},
// responsible_staff{id,name}. Absent parts are null.
type Contract struct {
	Status           string          `json:"status"`
	Contact          *Contact        `json:"contact"`
	Matter           *Matter         `json:"matter"`
	ResponsibleStaff *ContractPerson `json:"responsible_staff"`
}

// ContractPerson is the id and name of the responsible staff member in Contract.
type ContractPerson struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

// Contract returns the DESIGN.md shape of r.
func (r Result) Contract() Contract {
	c := Contract{Status: r.Status.String(), Contact: r.Contact, Matter: r.Matter}
	if c.Status == "unknown" {
		c.Status = "unconfigured"
	}
	if r.Staff != nil {
		c.ResponsibleStaff = &ContractPerson{ID: r.Staff.ID, Name: r.Staff.Name}
	}
	return c
}

// MarshalContract is json.Marshal of r.Contract().
func (r Result) MarshalContract() ([]byte, error) { return json.Marshal(r.Contract()) }
