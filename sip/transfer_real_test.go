package sip

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/matterline/matterline/lookup"
	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/phone"
	"github.com/matterline/matterline/records"
	"github.com/matterline/matterline/routing"
	"github.com/matterline/matterline/store"
)

// ruleRouter adapts the real routing engine to Router (what cmd does with the
// routing store).
type ruleRouter struct{ set *routing.RuleSet }

func (r ruleRouter) Decide(ctx context.Context, call CallInfo, in routing.Intent) routing.Decision {
	return routing.Decide(call.Lookup, in, r.set, time.Now())
}

func (r ruleRouter) Fallback(ctx context.Context, call CallInfo, rule string) routing.Decision {
	return routing.Fallback(r.set, rule, time.Now())
}

func (r ruleRouter) Extensions(ctx context.Context) []string { return r.set.Extensions() }

func quistLookup() *fakeLookup {
	return &fakeLookup{result: lookup.Result{Status: lookup.StatusFound, Number: testCaller,
		Contact: &lookup.Contact{ID: 42, Name: "Ada Quist"},
		Matter:  &lookup.Matter{ID: 7, DisplayNumber: "00101-Quist"},
		Staff:   &lookup.Staff{ID: 501, Name: "Felix Dubinsky"}}}
}

// No answer → CANCEL, then the rule's "message" handling with the real routing
// engine and the real records stores on a temp SQLite database: the message is
// recorded, listed and playable, and the call record says so.
func TestWarmNoAnswerTakesMessageRealStores(t *testing.T) {
	t.Parallel()
	callee := newCallee(t, phone.AnswerOptions{NoAnswer: true})
	set, err := routing.NewRuleSet([]routing.Rule{{
		Name: "felix", StaffID: 501, StaffName: "Felix Dubinsky", Destination: calleeURI(callee, "101"),
		Mode: routing.ModeWarm, CallerID: routing.CallerIDCaller, RingTimeout: time.Second,
		Unavailable: routing.Unavailable{Kind: routing.UnavailableMessage}, Enabled: true,
	}}, nil, routing.Firm{TimeZone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	calls, err := records.NewCallStore(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := records.NewMessageStore(ctx, db, filepath.Join(dir, "messages"))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, transferConfig(), WithRouter(ruleRouter{set}), WithLookup(quistLookup()),
		WithCallRecords(calls), WithMessages(msgs))
	c := e.dialTransfer(e.phone, phone.InviteOptions{})
	in, err := callee.Next(ctxT(t, 8*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-in.Cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("callee got no cancel after the ring timeout")
	}
	eventually(t, 8*time.Second, "leave_message prompt", func() bool {
		return slices.Contains(promptSequence(c.RTP.Packets()), media.PromptLeaveMessage)
	})
	time.Sleep(700 * time.Millisecond) // the prompt and the beep
	if err := c.RTP.SendAudio(0, media.EncodeUlaw(8000), 75); err != nil {
		t.Fatal(err)
	}
	// The caller stops talking: silence ends the message; thank_you, goodbye, BYE.
	if err := c.WaitBye(ctxT(t, 8*time.Second)); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(promptSequence(c.RTP.Packets()), media.PromptThankYou) {
		t.Error("no thank_you")
	}
	e.waitIdle()

	list, err := msgs.List(ctx, records.MessageFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Fatalf("%d messages, want 1", len(list))
	}
	m := list[0]
	if m.Caller != testCaller || m.ContactID != 42 || m.MatterID != 7 || m.Rule != "felix" ||
		m.Duration < time.Second || m.Duration > 2500*time.Millisecond {
		t.Errorf("message = %+v", m)
	}
	path, err := msgs.Path(m)
	if err != nil {
		t.Fatal(err)
	}
	p, err := media.LoadWAV(path)
	if err != nil {
		t.Fatalf("message wav not playable: %v", err)
	}
	if d := p.Duration(); d < time.Second {
		t.Errorf("wav holds %s", d)
	}
	loud := 0
	for _, s := range p.Samples {
		if s > 4000 {
			loud++
		}
	}
	if loud < 8000 {
		t.Errorf("wav has %d loud samples, want the caller's audio", loud)
	}

	// The record is written when the flow finishes (flowDone), which can be just
	// after the call left the registry: wait for it.
	var recs []records.CallRecord
	eventually(t, 10*time.Second, "call record", func() bool {
		var err error
		if recs, err = calls.List(ctx, records.Filter{}); err != nil {
			t.Fatal(err)
		}
		return len(recs) > 0
	})
	if len(recs) != 1 {
		t.Fatalf("%d call records, want 1", len(recs))
	}
	r := recs[0]
	if r.CallID != c.CallID || r.Outcome != records.OutcomeMessage || r.Rule != "felix" ||
		r.Mode != routing.ModeWarm || r.EndReason != records.EndOurBye || r.ContactID != 42 ||
		r.MatterID != 7 || r.StaffID != 501 || r.Lookup != lookup.StatusFound || r.Caller != testCaller {
		t.Errorf("call record = %+v", r)
	}
}

// An extension dialled from the menu reaches the rule with that extension; a
// mapped digit that starts no extension acts at once.
func TestMenuExtensionDialled(t *testing.T) {
	t.Parallel()
	callee := newCallee(t, phone.AnswerOptions{})
	set, err := routing.NewRuleSet([]routing.Rule{{
		Name: "paralegal", Extension: "205", Destination: calleeURI(callee, "205"),
		Mode: routing.ModeWarm, CallerID: routing.CallerIDService, RingTimeout: 2 * time.Second,
		Unavailable: routing.Unavailable{Kind: routing.UnavailableHangup}, Enabled: true,
	}}, nil, routing.Firm{TimeZone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := transferConfig()
	cfg.DigitTimeout = time.Second
	cdr := &memCDR{}
	e := newEnv(t, cfg, WithRouter(ruleRouter{set}), WithCallRecords(cdr))
	c := e.answered(phone.InviteOptions{From: testCaller})
	for _, k := range "205" {
		if err := c.SendDTMF(k); err != nil {
			t.Fatal(err)
		}
	}
	in, err := callee.Next(ctxT(t, 8*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if in.Invite.From().Address.User != testService {
		t.Errorf("From = %s, want the service number", in.Invite.From().Value())
	}
	e.waitState(c.CallID, StateBridged)
	if _, err := c.Bye(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	rec := cdr.wait(t, c.CallID)
	if len(rec.Intents) != 1 || rec.Intents[0] != "extension:205" || rec.Outcome != records.OutcomeBridged {
		t.Errorf("record = %+v", rec)
	}
}

// With espeak-ng installed, the rule's message and the whisper (with the caller's
// name and matter number) are spoken.
func TestWarmWhisperSpokenWithTTS(t *testing.T) {
	t.Parallel()
	tts, err := media.NewTTS(media.TTSConfig{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if !tts.Available() {
		if os.Getenv("CI") == "true" {
			t.Fatal("espeak-ng not installed: .ci/run installs it")
		}
		t.Skip("espeak-ng not installed")
	}
	callee := newCallee(t, phone.AnswerOptions{})
	rule := warmRule("felix", calleeURI(callee, "101"), "")
	rule.Message = "One moment please."
	e := newEnv(t, transferConfig(), WithRouter(newFakeRouter(transferDecision(rule))),
		WithLookup(quistLookup()), WithTTS(tts))
	c := e.dialTransfer(e.phone, phone.InviteOptions{})
	in, err := callee.Next(ctxT(t, 15*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	e.waitState(c.CallID, StateBridged)
	// Speech is not one constant byte like the test prompts: count varied packets.
	varied := func(pkts []phone.RTPPacket) int {
		n := 0
		for _, p := range pkts {
			if len(p.Payload) > 1 && p.Payload[0] != p.Payload[len(p.Payload)/2] {
				n++
			}
		}
		return n
	}
	if n := varied(in.RTP.Packets()); n < 40 {
		t.Errorf("callee heard %d packets of speech, want a spoken whisper", n)
	}
	if n := varied(c.RTP.Packets()); n < 20 {
		t.Errorf("caller heard %d packets of speech or ringback", n)
	}
	if _, err := c.Bye(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	e.waitIdle()
}
