package clio

import (
	"fmt"
	"strings"
)

// MatchMode is how a stored number must match the caller's.
type MatchMode uint8

const (
	MatchUnknown MatchMode = iota
	MatchFull              // the full normalized number must be equal (default)
	MatchLast4             // the last four digits suffice (explicit opt-in, the seed's method)
)

// ParseMatchMode reads clio.match: full | last4 ("" = full).
func ParseMatchMode(s string) (MatchMode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "full":
		return MatchFull, nil
	case "last4":
		return MatchLast4, nil
	}
	return MatchUnknown, fmt.Errorf("clio: unknown match mode %q (want full or last4)", s)
}

// MatterPolicy picks one matter among a contact's matters.
type MatterPolicy uint8

const (
	PolicyUnknown MatterPolicy = iota
	PolicyRecent               // newest updated_at (default)
	PolicyFirst                // the first one Clio returns (lowest id)
)

// ParseMatterPolicy reads clio.matter_policy: recent | first ("" = recent).
func ParseMatterPolicy(s string) (MatterPolicy, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "recent":
		return PolicyRecent, nil
	case "first":
		return PolicyFirst, nil
	}
	return PolicyUnknown, fmt.Errorf("clio: unknown matter policy %q (want recent or first)", s)
}

// StaffField names a matter's user field the staff member may come from.
type StaffField uint8

const (
	StaffUnknown StaffField = iota
	StaffResponsibleStaff
	StaffResponsibleAttorney
	StaffOriginatingAttorney
)

// ParseStaffField reads one clio.staff_preference entry.
func ParseStaffField(s string) (StaffField, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "responsible_staff":
		return StaffResponsibleStaff, nil
	case "responsible_attorney":
		return StaffResponsibleAttorney, nil
	case "originating_attorney":
		return StaffOriginatingAttorney, nil
	}
	return StaffUnknown, fmt.Errorf("clio: unknown staff field %q", s)
}

func (f StaffField) of(m *Matter) *User {
	switch f {
	case StaffResponsibleStaff:
		return m.ResponsibleStaff
	case StaffResponsibleAttorney:
		return m.ResponsibleAttorney
	case StaffOriginatingAttorney:
		return m.OriginatingAttorney
	}
	return nil
}

// Reasons carried in lookup.Result.Reason.
const (
	ReasonMatched         = "matched"
	ReasonSharedSameStaff = "shared_number_same_staff"
	ReasonSeveralContacts = "several_contacts"
	ReasonNoMatch         = "no_match"
	ReasonNoMatchTrunc    = "no_match_max_pages"
	ReasonNoOpenMatter    = "no_open_matter"
	ReasonNoStaff         = "no_responsible_staff"
	ReasonUnconfigured    = "clio_not_configured"
	ReasonNotConnected    = "clio_not_connected"
	ReasonCircuitOpen     = "circuit_open"
	ReasonRateLimited     = "rate_limited"
	ReasonRateReserve     = "rate_limit_reserve"
	ReasonAuthNeeded      = "authorization_needed"
	ReasonTimeout         = "timeout"
	ReasonServerError     = "server_error"
	ReasonForbidden       = "forbidden"
	ReasonAPIError        = "api_error"
	ReasonBadResponse     = "bad_response"
	ReasonNetwork         = "network_error"
	ReasonCanceled        = "canceled"
	ReasonInternal        = "internal_error"
	stalePrefix           = "stale_"
)
