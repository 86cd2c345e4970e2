package writeback

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/matterline/matterline/records"
	"github.com/matterline/matterline/routing"
)

// Payload is what an item sends, fixed at call end so that a retry after a
// restart sends the same thing. Names are the firm's confidential data: they
// live only in the outbox row and in Clio, never in logs or metrics.
type Payload struct {
	MatterID  int64 `json:"matter_id"`
	ContactID int64 `json:"contact_id,omitempty"`
	// UserID is the staff member: the communication's receiver, the time
	// entry's user, the task's assignee. 0 = none.
	UserID int64 `json:"user_id,omitempty"`
	// Time is when the call started (received_at) in the firm's zone.
	Time    time.Time `json:"time"`
	Subject string    `json:"subject,omitempty"` // communication subject, task name
	Body    string    `json:"body,omitempty"`    // communication body, task description, time entry note
	// Date is the time entry's date or the task's due date (YYYY-MM-DD).
	Date        string `json:"date,omitempty"`
	Seconds     int64  `json:"seconds,omitempty"`
	NonBillable bool   `json:"non_billable,omitempty"`
	Priority    string `json:"priority,omitempty"`
	// File is the message's WAV file (absolute path) and Name the document name.
	File string `json:"file,omitempty"`
	Name string `json:"name,omitempty"`
}

// Settings are the write-back switches (config clio.writeback.*).
type Settings struct {
	Communication, TimeEntry, Task, Document bool
	// NonBillable marks time entries non-billable unless the rule says otherwise.
	NonBillable bool
	// TaskPriority is High, Normal or Low (default Normal); TaskDueDays the days
	// from the call to the task's due date (default 1).
	TaskPriority string
	TaskDueDays  int
	// Location is the firm's zone, for dates (default UTC).
	Location *time.Location
}

// Facts are what Plan needs to know about one ended call.
type Facts struct {
	Record records.CallRecord
	// ContactName, MatterNumber and Staff* come from the call's lookup (the
	// record keeps ids only); Staff is the matter's responsible staff member.
	ContactName  string
	MatterNumber string
	StaffID      int64
	StaffName    string
	// Rule is the rule of the call's last transfer decision (nil: none).
	Rule *routing.Rule
	// Message is the message the caller left (nil: none); MessagePath its file.
	Message     *records.Message
	MessagePath string
}

// Plan returns the items to enqueue for a call: nothing unless the call
// reached a decision and its lookup found a contact and a matter.
func Plan(f Facts, s Settings) []Item {
	rec := f.Record
	if rec.ContactID == 0 || rec.MatterID == 0 || rec.ID == "" {
		return nil
	}
	kind := outcomeKind(rec.Outcome)
	if kind == outcomeNone {
		return nil
	}
	if f.Message != nil {
		kind = outcomeMessage
	}
	loc := s.Location
	if loc == nil {
		loc = time.UTC
	}
	start := rec.Start.In(loc)
	end := rec.End
	if end.IsZero() {
		end = rec.Start
	}
	contact := cmpOr(f.ContactName, "caller "+rec.Caller)
	taker, takerID := f.taker()
	base := Payload{MatterID: rec.MatterID, ContactID: rec.ContactID, Time: start}
	var items []Item
	add := func(k Kind, p Payload) {
		items = append(items, Item{CallID: rec.ID, Kind: k, State: StatePending, Payload: p})
	}

	if s.Communication {
		p := base
		p.UserID = takerID
		if kind != outcomeTransferred && f.StaffID != 0 {
			p.UserID = f.StaffID
		}
		p.Subject = subject(kind, rec, contact, taker, f.Message)
		p.Body = body(f, rec, contact, taker, loc)
		add(KindCommunication, p)
	}
	if kind == outcomeTransferred && rec.Outcome == records.OutcomeBridged && takerID != 0 && f.timeEntry(s.TimeEntry) {
		p := base
		p.UserID = takerID
		p.Date = start.Format("2006-01-02")
		p.Seconds = int64(rec.TalkDuration().Round(time.Second) / time.Second)
		p.NonBillable = f.nonBillable(s.NonBillable)
		p.Body = fmt.Sprintf("Phone call with %s (%s)", contact, fmtDuration(rec.TalkDuration()))
		if p.Seconds > 0 {
			add(KindTimeEntry, p)
		}
	}
	if (kind == outcomeMessage || kind == outcomeMissed) && s.Task {
		assignee := f.StaffID
		if assignee == 0 {
			assignee = takerID
		}
		if assignee != 0 {
			p := base
			p.UserID = assignee
			days := s.TaskDueDays
			if days <= 0 {
				days = 1
			}
			p.Date = end.In(loc).AddDate(0, 0, days).Format("2006-01-02")
			p.Priority = cmpOr(f.taskPriority(), cmpOr(s.TaskPriority, "Normal"))
			p.Subject = "Call back " + contact
			if kind == outcomeMessage {
				p.Subject += " (message left)"
			}
			p.Body = fmt.Sprintf("%s called %s at %s and %s. Number: %s. matterline call %s.",
				contact, cmpOr(taker, "the firm"), start.Format("2006-01-02 15:04 MST"), missedWhat(kind, rec), rec.Caller, rec.ID)
			add(KindTask, p)
		}
	}
	if kind == outcomeMessage && s.Document && f.MessagePath != "" {
		p := base
		p.File = f.MessagePath
		p.Name = fmt.Sprintf("Message from %s %s%s", contact, start.Format("2006-01-02 1504"), cmpOr(filepath.Ext(f.MessagePath), ".wav"))
		add(KindDocument, p)
	}
	return items
}

type outcomeClass uint8

const (
	outcomeNone        outcomeClass = iota // no decision: nothing is written
	outcomeTransferred                     // referred, bridged, redirected
	outcomeMessage                         // a message was left
	outcomeMissed                          // nobody answered: no answer, busy, declined, failed, abandoned
)

func outcomeKind(o records.Outcome) outcomeClass {
	switch o {
	case records.OutcomeReferred, records.OutcomeBridged, records.OutcomeRedirected:
		return outcomeTransferred
	case records.OutcomeMessage:
		return outcomeMessage
	case records.OutcomeNoAnswer, records.OutcomeBusy, records.OutcomeDeclined, records.OutcomeFailed, records.OutcomeAbandoned:
		return outcomeMissed
	}
	return outcomeNone
}

// taker is who the call went to: the rule's staff member (its Clio user id when
// the rule has one, or the responsible staff member when the rule serves them by
// name), else the rule's name.
func (f Facts) taker() (string, int64) {
	if f.Rule == nil {
		return f.StaffName, 0
	}
	name := cmpOr(f.Rule.StaffName, f.Rule.Name)
	switch {
	case f.Rule.StaffID != 0:
		return name, f.Rule.StaffID
	case f.Rule.StaffName != "" && strings.EqualFold(f.Rule.StaffName, f.StaffName):
		return name, f.StaffID
	}
	return name, 0
}

func (f Facts) timeEntry(def bool) bool {
	if f.Rule != nil && f.Rule.Writeback.TimeEntry != routing.ToggleDefault {
		return f.Rule.Writeback.TimeEntry == routing.ToggleOn
	}
	return def
}

func (f Facts) nonBillable(def bool) bool {
	if f.Rule != nil && f.Rule.Writeback.NonBillable != routing.ToggleDefault {
		return f.Rule.Writeback.NonBillable == routing.ToggleOn
	}
	return def
}

func (f Facts) taskPriority() string {
	if f.Rule != nil {
		return f.Rule.Writeback.TaskPriority
	}
	return ""
}

// subject is the communication's subject line, e.g. "Call from Ada Quist
// transferred to Felix Dubinsky (warm, 3 m 12 s)".
func subject(k outcomeClass, rec records.CallRecord, contact, taker string, msg *records.Message) string {
	switch k {
	case outcomeTransferred:
		s := "Call from " + contact + " transferred"
		if taker != "" {
			s += " to " + taker
		}
		var details []string
		if rec.Mode != 0 {
			details = append(details, rec.Mode.String())
		}
		if rec.Outcome == records.OutcomeBridged {
			details = append(details, fmtDuration(rec.TalkDuration()))
		}
		if rec.Outcome == records.OutcomeRedirected {
			details = append(details, "redirected")
		}
		if len(details) > 0 {
			s += " (" + strings.Join(details, ", ") + ")"
		}
		return s
	case outcomeMessage:
		s := "Message left: call from " + contact
		if taker != "" {
			s += " for " + taker
		}
		if msg != nil && msg.Duration > 0 {
			s += " (" + fmtDuration(msg.Duration) + ")"
		}
		return s
	}
	s := "Missed: nobody available for call from " + contact
	if taker != "" {
		s += " (" + taker + ", " + strings.ReplaceAll(rec.Outcome.String(), "_", " ") + ")"
	}
	return s
}

func missedWhat(k outcomeClass, rec records.CallRecord) string {
	if k == outcomeMessage {
		return "left a message"
	}
	return "nobody was available (" + strings.ReplaceAll(rec.Outcome.String(), "_", " ") + ")"
}

func body(f Facts, rec records.CallRecord, contact, taker string, loc *time.Location) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Caller: %s (%s)\n", contact, rec.Caller)
	if f.MatterNumber != "" {
		fmt.Fprintf(&b, "Matter: %s\n", f.MatterNumber)
	}
	fmt.Fprintf(&b, "Outcome: %s\n", strings.ReplaceAll(rec.Outcome.String(), "_", " "))
	if taker != "" {
		fmt.Fprintf(&b, "To: %s", taker)
		if rec.Mode != 0 {
			fmt.Fprintf(&b, " (%s transfer)", rec.Mode)
		}
		b.WriteString("\n")
	}
	if rec.Rule != "" {
		fmt.Fprintf(&b, "Rule: %s\n", rec.Rule)
	}
	fmt.Fprintf(&b, "Started: %s\n", rec.Start.In(loc).Format("2006-01-02 15:04:05 MST"))
	if !rec.Answer.IsZero() && !rec.End.IsZero() {
		fmt.Fprintf(&b, "Talk time: %s\n", fmtDuration(rec.TalkDuration()))
	}
	if f.Message != nil {
		fmt.Fprintf(&b, "Message: %s\n", fmtDuration(f.Message.Duration))
	}
	fmt.Fprintf(&b, "matterline call id: %s\n", rec.ID)
	return b.String()
}

// fmtDuration writes "12 s" or "3 m 12 s" (or "1 h 2 m").
func fmtDuration(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%d s", s)
	case s < 3600:
		return fmt.Sprintf("%d m %d s", s/60, s%60)
	}
	return fmt.Sprintf("%d h %d m", s/3600, s%3600/60)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
