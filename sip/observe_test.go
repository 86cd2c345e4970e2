package sip

import (
	"bytes"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gosip "github.com/emiago/sipgo/sip"

	"github.com/matterline/matterline/lookup"
	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/phone"
	"github.com/matterline/matterline/records"
	"github.com/matterline/matterline/routing"
)

// obsEvent is one notification a recObserver got.
type obsEvent struct {
	kind    string
	callID  string
	snap    CallSnapshot
	lookup  lookup.Result
	took    time.Duration
	intent  routing.Intent
	source  IntentSource
	dec     routing.Decision
	mode    routing.Mode
	outcome string
	detail  string
	end     CallEnd
	method  string
	code    int
	dtmf    string
	stats   media.Stats
	on      bool
	n       int
}

// recObserver records every notification.
type recObserver struct {
	mu sync.Mutex
	ev []obsEvent
}

func (r *recObserver) add(e obsEvent) {
	r.mu.Lock()
	r.ev = append(r.ev, e)
	r.mu.Unlock()
}

func (r *recObserver) CallStarted(c CallSnapshot) {
	r.add(obsEvent{kind: "started", callID: c.ID, snap: c})
}
func (r *recObserver) LookupDone(id string, res lookup.Result, took time.Duration) {
	r.add(obsEvent{kind: "lookup_done", callID: id, lookup: res, took: took})
}
func (r *recObserver) Intent(id string, in routing.Intent, src IntentSource) {
	r.add(obsEvent{kind: "intent", callID: id, intent: in, source: src})
}
func (r *recObserver) Decision(id string, d routing.Decision) {
	r.add(obsEvent{kind: "decision", callID: id, dec: d})
}
func (r *recObserver) TransferResult(id string, m routing.Mode, outcome, detail string) {
	r.add(obsEvent{kind: "transfer_result", callID: id, mode: m, outcome: outcome, detail: detail})
}
func (r *recObserver) CallEnded(id string, e CallEnd) {
	r.add(obsEvent{kind: "ended", callID: id, end: e})
}
func (r *recObserver) SIPResponse(method string, code int) {
	r.add(obsEvent{kind: "response", method: method, code: code})
}
func (r *recObserver) DTMF(id, source string) {
	r.add(obsEvent{kind: "dtmf", callID: id, dtmf: source})
}
func (r *recObserver) RTPStats(id string, st media.Stats) {
	r.add(obsEvent{kind: "rtp", callID: id, stats: st})
}
func (r *recObserver) Draining(on bool)  { r.add(obsEvent{kind: "draining", on: on}) }
func (r *recObserver) ActiveCalls(n int) { r.add(obsEvent{kind: "active", n: n}) }

func (r *recObserver) events() []obsEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ev)
}

// of returns the events of one kind (and call, when id is not empty).
func (r *recObserver) of(kind, id string) []obsEvent {
	var out []obsEvent
	for _, e := range r.events() {
		if e.kind == kind && (id == "" || e.callID == id) {
			out = append(out, e)
		}
	}
	return out
}

// sequence is the order of the call's ordered notifications.
func (r *recObserver) sequence(id string) []string {
	var out []string
	for _, e := range r.events() {
		switch e.kind {
		case "started", "lookup_done", "intent", "decision", "transfer_result", "ended":
			if e.callID == id {
				out = append(out, e.kind)
			}
		}
	}
	return out
}

func (r *recObserver) responses(method string, code int) int {
	n := 0
	for _, e := range r.of("response", "") {
		if e.method == method && e.code == code {
			n++
		}
	}
	return n
}

func TestObserverSeesCallInOrder(t *testing.T) {
	rec := &recObserver{}
	lk := &fakeLookup{delay: 100 * time.Millisecond, result: lookup.Result{Status: lookup.StatusFound,
		Contact: &lookup.Contact{ID: 7, Name: "Ada Quist"}}}
	r := newFakeRouter(routing.Decision{Action: routing.ActionNone, Reason: routing.ReasonNoRule})
	e := newEnv(t, defaultTestConfig(), WithObserver(rec), WithLookup(lk), WithRouter(r))
	ctx := ctxT(t, 20*time.Second)

	// The ACK comes late: the 200 is retransmitted but counted once.
	c := e.answered(phone.InviteOptions{From: "+12175552171", NoAutoAck: true})
	eventually(t, 5*time.Second, "a 200 retransmission", func() bool { return c.Retransmissions(1) >= 1 })
	if err := c.Ack(); err != nil {
		t.Fatal(err)
	}
	id := e.onlyCall().ID
	eventually(t, 5*time.Second, "in menu", func() bool { s, _ := e.srv.Registry().Get(id); return s.State == StateInMenu })
	if !c.RTP.WaitPackets(5, 5*time.Second) {
		t.Fatal("no greeting")
	}
	// An unmapped INFO digit (no intent), then 1 by RFC 4733.
	if res, err := c.InfoDTMF(ctx, '7'); err != nil || res.StatusCode != 200 {
		t.Fatalf("info: %v %v", res, err)
	}
	eventually(t, 5*time.Second, "info digit", func() bool { return len(rec.of("dtmf", id)) == 1 })
	if err := c.SendDTMF('1'); err != nil {
		t.Fatal(err)
	}
	r.wait(t, 5*time.Second)
	eventually(t, 5*time.Second, "decision", func() bool { return len(rec.of("decision", id)) == 1 })
	if res, err := c.Bye(ctx); err != nil || res.StatusCode != 200 {
		t.Fatalf("bye: %v %v", res, err)
	}
	e.waitIdle()
	eventually(t, 5*time.Second, "ended", func() bool { return len(rec.of("ended", id)) == 1 })

	if got, want := rec.sequence(id), []string{"started", "lookup_done", "intent", "decision", "ended"}; !slices.Equal(got, want) {
		t.Fatalf("sequence = %v, want %v", got, want)
	}
	st := rec.of("started", id)[0].snap
	if st.Caller != "+12175552171" || st.SIPCallID != c.CallID || st.State != StateRinging {
		t.Errorf("started snapshot = %+v", st)
	}
	lu := rec.of("lookup_done", id)[0]
	if lu.lookup.Status != lookup.StatusFound || lu.lookup.Contact == nil || lu.lookup.Contact.ID != 7 ||
		lu.took < 90*time.Millisecond || lu.took > 5*time.Second {
		t.Errorf("lookup_done = %+v took %s", lu.lookup, lu.took)
	}
	in := rec.of("intent", id)[0]
	if in.intent.Kind != routing.IntentResponsible || in.source != IntentSourceMenu {
		t.Errorf("intent = %v from %v, want responsible from menu", in.intent, in.source)
	}
	if d := rec.of("decision", id)[0].dec; d.Action != routing.ActionNone || d.Reason != routing.ReasonNoRule {
		t.Errorf("decision = %+v", d)
	}
	end := rec.of("ended", id)[0].end
	if end.Reason != EndCallerBye || end.Outcome != "caller_hangup" || end.Answered.IsZero() ||
		end.Talk <= 0 || end.Duration < end.Talk || !end.Ended.After(end.Started) {
		t.Errorf("ended = %+v", end)
	}

	for _, w := range []struct {
		method string
		code   int
		n      int
	}{{"INVITE", 100, 1}, {"INVITE", 200, 1}, {"INFO", 200, 1}, {"BYE", 200, 1}} {
		if got := rec.responses(w.method, w.code); got != w.n {
			t.Errorf("responses %s %d: %d, want %d", w.method, w.code, got, w.n)
		}
	}
	var sources []string
	for _, d := range rec.of("dtmf", id) {
		sources = append(sources, d.dtmf)
	}
	if !slices.Equal(sources, []string{"info", "rfc4733"}) {
		t.Errorf("dtmf sources = %v", sources)
	}
	rtp := rec.of("rtp", id)
	if len(rtp) != 1 || rtp[0].stats.PacketsOut == 0 || rtp[0].stats.PacketsIn == 0 {
		t.Errorf("rtp stats = %+v", rtp)
	}
	active := rec.of("active", "")
	if len(active) < 2 || active[0].n != 1 || active[len(active)-1].n != 0 {
		t.Errorf("active calls = %+v", active)
	}
}

func TestObserverCancelWhileRinging(t *testing.T) {
	rec := &recObserver{}
	cfg := defaultTestConfig()
	cfg.AnswerWait = 10 * time.Second
	e := newEnv(t, cfg, WithObserver(rec),
		WithLookup(&fakeLookup{delay: 10 * time.Second, result: lookup.Result{Status: lookup.StatusFound}}))
	ctx := ctxT(t, 15*time.Second)
	c, err := e.phone.Invite(ctx, phone.InviteOptions{Target: e.target("udp")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	eventually(t, 5*time.Second, "ringing", func() bool { return e.srv.Registry().Count() == 1 && e.ports.InUse() == 1 })
	id := e.onlyCall().ID
	if res, err := c.Cancel(ctx); err != nil || res.StatusCode != 200 {
		t.Fatalf("cancel: %v %v", res, err)
	}
	if final, err := c.WaitFinal(ctx); err != nil || final.StatusCode != 487 {
		t.Fatalf("final = %v %v, want 487", final, err)
	}
	e.waitIdle()
	eventually(t, 5*time.Second, "ended", func() bool { return len(rec.of("ended", id)) == 1 })
	// The lookup was cancelled with the call and still reported first.
	if got, want := rec.sequence(id), []string{"started", "lookup_done", "ended"}; !slices.Equal(got, want) {
		t.Fatalf("sequence = %v, want %v", got, want)
	}
	if end := rec.of("ended", id)[0].end; end.Reason != EndCallerCancel || end.Outcome != "abandoned" || !end.Answered.IsZero() || end.Talk != 0 {
		t.Errorf("ended = %+v", end)
	}
	if rec.responses("CANCEL", 200) != 1 || rec.responses("INVITE", 487) != 1 || rec.responses("INVITE", 200) != 0 {
		t.Errorf("responses = %+v", rec.of("response", ""))
	}
}

// newObsCall is a call with a server that has only what the notifications use.
func newObsCall(rec Observer) *call {
	s := &Server{reg: newRegistry(), now: time.Now, log: slog.New(slog.DiscardHandler)}
	s.obs.observer = rec
	return &call{id: "c1", srv: s, started: time.Now(), log: s.log}
}

func TestObserverHoldsEventsUntilLookup(t *testing.T) {
	rec := &recObserver{}
	c := newObsCall(rec)
	c.srv.notifyStarted(c)
	// An API intent before the lookup finished: held back.
	c.notifyIntent(routing.Intent{Kind: routing.IntentOperator}, IntentSourceAPI)
	c.notifyDecision(routing.Decision{Action: routing.ActionTransfer, Mode: routing.ModeWarm})
	c.notifyTransferResult(routing.ModeWarm, "success", "200 OK")
	if got := rec.sequence("c1"); !slices.Equal(got, []string{"started"}) {
		t.Fatalf("before lookup: %v", got)
	}
	c.notifyLookup(lookup.Result{Status: lookup.StatusNotFound})
	c.notifyLookup(lookup.Result{Status: lookup.StatusFound}) // a second report is ignored
	c.notifyEnded(EndError)
	c.notifyIntent(routing.Intent{Kind: routing.IntentOperator}, IntentSourceMenu) // after the end: dropped
	c.notifyEnded(EndCallerBye)                                                    // once only

	want := []string{"started", "lookup_done", "intent", "decision", "transfer_result", "ended"}
	if got := rec.sequence("c1"); !slices.Equal(got, want) {
		t.Fatalf("sequence = %v, want %v", got, want)
	}
	if in := rec.of("intent", "c1")[0]; in.source != IntentSourceAPI || in.source.String() != "api" {
		t.Errorf("intent source = %v", in.source)
	}
	if tr := rec.of("transfer_result", "c1")[0]; tr.mode != routing.ModeWarm || tr.outcome != "success" || tr.detail != "200 OK" {
		t.Errorf("transfer result = %+v", tr)
	}
	if end := rec.of("ended", "c1")[0].end; end.Outcome != "transferred" {
		t.Errorf("outcome = %q, want transferred", end.Outcome)
	}
}

func TestReportTransferResult(t *testing.T) {
	rec := &recObserver{}
	c := newObsCall(rec)
	if err := c.srv.reg.reserve(c, 10); err != nil {
		t.Fatal(err)
	}
	c.srv.notifyStarted(c)
	c.notifyLookup(lookup.Result{Status: lookup.StatusFound})
	if !c.srv.ReportTransferResult("c1", routing.ModeCold, "rejected", "refer 405") {
		t.Fatal("report for a live call: false")
	}
	if c.srv.ReportTransferResult("nope", routing.ModeCold, "failed", "") {
		t.Error("report for an unknown call: true")
	}
	c.setCallOutcome("message")
	c.notifyEnded(EndError)
	if tr := rec.of("transfer_result", "c1"); len(tr) != 1 || tr[0].outcome != "rejected" || tr[0].mode != routing.ModeCold {
		t.Errorf("transfer results = %+v", tr)
	}
	if end := rec.of("ended", "c1")[0].end; end.Outcome != "message" {
		t.Errorf("outcome = %q, want message (set explicitly)", end.Outcome)
	}
}

func TestNotifyRecordOutcome(t *testing.T) {
	for _, tc := range []struct {
		o           records.Outcome
		transfer    string // "" = no TransferResult
		callOutcome string
	}{
		{records.OutcomeReferred, "success", "transferred"},
		{records.OutcomeBridged, "success", "transferred"},
		{records.OutcomeRedirected, "success", "transferred"},
		{records.OutcomeDeclined, "declined", "caller_hangup"},
		{records.OutcomeNoAnswer, "no_answer", "caller_hangup"},
		{records.OutcomeBusy, "busy", "caller_hangup"},
		{records.OutcomeFailed, "failed", "caller_hangup"},
		{records.OutcomeAbandoned, "cancelled", "caller_hangup"},
		{records.OutcomeMessage, "", "message"},
		{records.OutcomeNone, "", "caller_hangup"},
	} {
		rec := &recObserver{}
		c := newObsCall(rec)
		c.srv.notifyStarted(c)
		c.notifyLookup(lookup.Result{Status: lookup.StatusFound})
		c.notifyRecordOutcome(routing.ModeWarm, tc.o)
		c.notifyEnded(EndCallerBye)
		tr := rec.of("transfer_result", "c1")
		switch {
		case tc.transfer == "" && len(tr) != 0:
			t.Errorf("%s: transfer results %+v, want none", tc.o, tr)
		case tc.transfer != "" && (len(tr) != 1 || tr[0].outcome != tc.transfer || tr[0].mode != routing.ModeWarm):
			t.Errorf("%s: transfer results %+v, want %s", tc.o, tr, tc.transfer)
		}
		if got := rec.of("ended", "c1")[0].end.Outcome; got != tc.callOutcome {
			t.Errorf("%s: call outcome %q, want %q", tc.o, got, tc.callOutcome)
		}
	}
}

func TestCallOutcome(t *testing.T) {
	for _, tc := range []struct {
		reason             EndReason
		transfer, explicit string
		want               string
	}{
		{EndCallerBye, "", "", "caller_hangup"},
		{EndCallerBye, "success", "", "transferred"},
		{EndCallerBye, "declined", "", "caller_hangup"},
		{EndCallerBye, "success", "message", "message"},
		{EndTransferred, "", "", "transferred"},
		{EndCallerCancel, "", "", "abandoned"},
		{EndRejected, "", "", "rejected"},
		{EndNoAck, "", "", "timeout"},
		{EndRTPTimeout, "", "", "timeout"},
		{EndSessionExpired, "", "", "timeout"},
		{EndDrain, "", "", "drained"},
		{EndMenuGoodbye, "", "", "hangup"},
		{EndHangup, "", "", "hangup"},
		{EndShutdown, "", "", "hangup"},
		{EndCalleeBye, "", "", "transferred"},
		{EndOurBye, "", "", "hangup"},
		{EndError, "", "", "failed"},
		{EndUnknown, "", "", "failed"},
	} {
		if got := callOutcome(tc.reason, tc.transfer, tc.explicit); got != tc.want {
			t.Errorf("callOutcome(%v, %q, %q) = %q, want %q", tc.reason, tc.transfer, tc.explicit, got, tc.want)
		}
	}
}

func TestMaskNumber(t *testing.T) {
	for in, want := range map[string]string{
		"+12175552171": "***2171",
		"12175552171":  "***2171",
		"101":          "***",
		"2171":         "***",
		"":             "",
		"alice.smith":  "***mith",
	} {
		if got := maskNumber(in); got != want {
			t.Errorf("maskNumber(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestIntentSourceStrings(t *testing.T) {
	for s, want := range map[IntentSource]string{IntentSourceUnknown: "unknown", IntentSourceMenu: "menu",
		IntentSourceExtension: "extension", IntentSourceAPI: "api", 99: "unknown"} {
		if s.String() != want {
			t.Errorf("%d: %q, want %q", s, s.String(), want)
		}
	}
	if menuIntentSource(routing.Intent{Kind: routing.IntentExtension, Arg: "101"}) != IntentSourceExtension ||
		menuIntentSource(routing.Intent{Kind: routing.IntentResponsible}) != IntentSourceMenu {
		t.Error("menuIntentSource")
	}
}

func TestDrainingAnswersOptions503(t *testing.T) {
	rec := &recObserver{}
	e := newEnv(t, defaultTestConfig(), WithObserver(rec))
	c := e.answered(phone.InviteOptions{})
	if res := options(t, e, e.phone); res.StatusCode != 200 {
		t.Fatalf("options before draining: %d", res.StatusCode)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.srv.Drain(ctxT(t, 15*time.Second), 10*time.Second)
	}()
	eventually(t, 2*time.Second, "draining", e.srv.Draining)
	res := options(t, e, e.phone)
	if res.StatusCode != 503 || res.GetHeader("Retry-After") == nil {
		t.Errorf("out-of-dialog options while draining: %d, want 503 with Retry-After", res.StatusCode)
	}
	// The call in progress goes on: in-dialog OPTIONS still 200.
	if r, err := c.Request(ctxT(t, 5*time.Second), gosip.OPTIONS, "", nil); err != nil || r.StatusCode != 200 {
		t.Errorf("in-dialog options while draining: %v %v", r, err)
	}
	if r, err := c.Bye(ctxT(t, 5*time.Second)); err != nil || r.StatusCode != 200 {
		t.Fatalf("bye: %v %v", r, err)
	}
	<-done
	if rec.responses("OPTIONS", 503) != 1 {
		t.Errorf("OPTIONS 503 responses = %d, want 1", rec.responses("OPTIONS", 503))
	}
	e.srv.Drain(ctxT(t, time.Second), 0) // already draining: no second notification
	if d := rec.of("draining", ""); len(d) != 1 || !d[0].on {
		t.Errorf("draining notifications = %+v, want one true", d)
	}
}

// lockedBuffer is a bytes.Buffer safe for the handler's concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestInfoLogsMaskCallerNumber(t *testing.T) {
	var buf lockedBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	lk := &fakeLookup{result: lookup.Result{Status: lookup.StatusFound, Contact: &lookup.Contact{ID: 7}}}
	r := newFakeRouter(routing.Decision{Action: routing.ActionNone, Reason: routing.ReasonNoRule})
	e := newEnv(t, defaultTestConfig(), WithLogger(log), WithLookup(lk), WithRouter(r))
	c := e.answered(phone.InviteOptions{From: "+12175552171"})
	if !c.RTP.WaitPackets(5, 5*time.Second) {
		t.Fatal("no greeting")
	}
	if err := c.SendDTMF('1'); err != nil {
		t.Fatal(err)
	}
	r.wait(t, 5*time.Second)
	if res, err := c.Bye(ctxT(t, 5*time.Second)); err != nil || res.StatusCode != 200 {
		t.Fatalf("bye: %v %v", res, err)
	}
	e.waitIdle()

	var masked, debugFull bool
	for _, line := range strings.Split(buf.String(), "\n") {
		if strings.Contains(line, "level=DEBUG") {
			debugFull = debugFull || (strings.Contains(line, "invite caller") && strings.Contains(line, "+12175552171"))
			continue
		}
		if strings.Contains(line, "2175552171") {
			t.Errorf("full caller number above debug level: %s", line)
		}
		masked = masked || (strings.Contains(line, "level=INFO") && strings.Contains(line, "caller=***2171"))
	}
	if !masked {
		t.Error("no info line with the masked caller number")
	}
	if !debugFull {
		t.Error("no debug line with the full caller number")
	}
}
