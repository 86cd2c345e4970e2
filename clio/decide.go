package clio

import (
	"strings"

	"github.com/matterline/matterline/lookup"
)

// matterRules are the lookup policies that turn a contact's matters into one
// matter and one staff member. The Service and the Index share them, so that a
// lookup answered from the index equals the one Clio would have given.
type matterRules struct {
	status []MatterStatus
	policy MatterPolicy
	prefs  []StaffField
}

func (mr matterRules) counts(st string) bool {
	for _, want := range mr.status {
		if strings.EqualFold(st, string(want)) {
			return true
		}
	}
	return false
}

// pick returns the matter chosen by policy among ms (in Clio's order, id
// ascending) whose status counts, and its staff member by preference.
func (mr matterRules) pick(ms []Matter) (*Matter, *User) {
	var best *Matter
	for i := range ms {
		m := &ms[i]
		// Filter again here: a misspelt or ignored filter returns every matter.
		if !mr.counts(m.Status) {
			continue
		}
		if best == nil || (mr.policy == PolicyRecent && m.UpdatedAt.After(best.UpdatedAt.Time)) {
			best = m
		}
	}
	if best == nil {
		return nil, nil
	}
	for _, f := range mr.prefs {
		if u := f.of(best); u != nil && u.ID != 0 {
			return best, u
		}
	}
	return best, nil
}

// candidate is one contact whose full number equals the caller's, with the
// matter and staff member picked for it.
type candidate struct {
	c     Contact
	m     *Matter
	staff *User
}

// decide is the outcome of DESIGN.md "Caller matching" for the candidates of
// num (sorted by contact id, at most maxFamily): one contact, or several
// resolving to the same staff member, is found; several with different (or no)
// staff is ambiguous.
func decide(num string, picks []candidate) lookup.Result {
	res := lookup.Result{Number: num}
	if len(picks) == 0 {
		res.Status, res.Reason = lookup.StatusNotFound, ReasonNoMatch
		return res
	}
	if len(picks) > maxFamily {
		res.Status, res.Reason = lookup.StatusAmbiguous, ReasonSeveralContacts
		return res
	}
	for _, p := range picks[1:] {
		if p.staff == nil || picks[0].staff == nil || p.staff.ID != picks[0].staff.ID {
			res.Status, res.Reason = lookup.StatusAmbiguous, ReasonSeveralContacts
			return res
		}
	}
	p := picks[0]
	res.Status = lookup.StatusFound
	res.Contact = &lookup.Contact{ID: p.c.ID, Name: p.c.Name}
	switch {
	case p.m == nil:
		res.Reason = ReasonNoOpenMatter
	case p.staff == nil:
		res.Reason = ReasonNoStaff
	case len(picks) > 1:
		res.Reason = ReasonSharedSameStaff
	default:
		res.Reason = ReasonMatched
	}
	if p.m != nil {
		res.Matter = &lookup.Matter{ID: p.m.ID, DisplayNumber: p.m.DisplayNumber}
	}
	if p.staff != nil {
		res.Staff = &lookup.Staff{ID: p.staff.ID, Name: p.staff.Name, Email: p.staff.Email, Phone: p.staff.PhoneNumber}
	}
	return res
}
