package main

// End-to-end tests of issue 6 through the real server: serve runs in-process
// on loopback with the sandbox Clio, rules come through the HTTP API, calls are
// placed by the scripted phones of package phone.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/matterline/matterline/config"
	"github.com/matterline/matterline/events"
	"github.com/matterline/matterline/hep"
	"github.com/matterline/matterline/phone"
	"github.com/matterline/matterline/records"
)

const e2eToken = "e2e-token-0123456789abcdef"

// felixRule is Felix Dubinsky's rule (the sandbox caller's responsible staff).
func felixRule(mode string) map[string]any {
	return map[string]any{"name": "felix", "staff": "Felix Dubinsky", "staff_id": 501,
		"to": e2eFelix, "mode": mode}
}

// closedRule is a rule whose hours are two days from now (UTC), so it is
// outside its hours whenever the test runs.
func closedRule() map[string]any {
	day := strings.ToLower(time.Now().UTC().AddDate(0, 0, 2).Weekday().String()[:3])
	return map[string]any{"name": "closed", "to": "+12175550102", "mode": "cold",
		"hours": day + " 09:00-10:00", "tz": "UTC", "unavailable": "menu"}
}

// decisionJSON of the API (202 and 422 bodies).
type apiDecision struct {
	Action      string `json:"action"`
	Rule        string `json:"rule"`
	Mode        string `json:"mode"`
	Destination string `json:"destination"`
	Reason      string `json:"reason"`
	Error       string `json:"error"`
	Decision    *struct {
		Action string `json:"action"`
		Rule   string `json:"rule"`
		Reason string `json:"reason"`
	} `json:"decision"`
}

// TestE2EVoiceAgentTransfer plays an external voice agent: during a call it
// reads the caller from GET /v1/calls and /v1/calls/{id}, asks for transfers in
// the three body forms, and each produces a REFER to Felix's number at the
// outbound proxy, after whose 200 sipfrag NOTIFY the server hangs up the caller.
func TestE2EVoiceAgentTransfer(t *testing.T) {
	t.Parallel()
	const proxy = "127.0.0.1:5999" // never dialled: a REFER only names it
	s := startE2E(t, e2eOptions{token: e2eToken, outboundProxy: "sip:" + proxy, shortPrompts: true,
		configure: func(c *config.Config) { c.Log.SIPTrace = true }})

	// The token guards every /v1 route; probes stay open.
	if code, _ := s.do("GET", "/v1/calls", nil, false); code != http.StatusUnauthorized {
		t.Fatalf("GET /v1/calls without the token: %d, want 401", code)
	}
	if code, _ := s.do("POST", "/v1/calls/x/transfer", map[string]string{"target": "responsible"}, false); code != http.StatusUnauthorized {
		t.Fatalf("POST transfer without the token: %d, want 401", code)
	}
	if code, _ := s.do("GET", "/healthz", nil, false); code != http.StatusOK {
		t.Fatalf("GET /healthz: %d, want 200", code)
	}
	s.addRule(felixRule("cold"))
	s.addRule(closedRule())
	s.api("POST", "/v1/calls/no-such-call/transfer", map[string]string{"target": "responsible"}, http.StatusNotFound, nil)

	for i, body := range []map[string]string{
		{"target": "responsible"},
		{"staff": "Felix"},
		{"rule": "felix"},
	} {
		var evs eventLog
		caller := newE2ECaller(t, e2eCaller, e2eCallerName, true, evs.add)
		call := s.dial(caller)
		c := s.waitCall()

		if i == 0 {
			// What a voice agent reads before it speaks.
			var got apiCallJSON
			s.api("GET", "/v1/calls/"+c.ID, nil, http.StatusOK, &got)
			lk := got.Lookup
			if got.ID != c.ID || got.Caller != e2eCaller || got.State != "in_menu" || lk.Status != "found" ||
				lk.Contact == nil || lk.Contact.ID != 1001 || lk.Contact.Name != e2eCallerName ||
				lk.Matter == nil || lk.Matter.DisplayNumber != "00101-Quist" ||
				lk.Staff == nil || lk.Staff.Name != "Felix Dubinsky" {
				t.Fatalf("GET /v1/calls/%s = %+v (lookup %+v)", c.ID, got, lk)
			}
			if code, _ := s.do("GET", "/v1/calls/"+c.ID, nil, false); code != http.StatusUnauthorized {
				t.Fatalf("GET /v1/calls/{id} without the token: %d, want 401", code)
			}
			// Outside its hours: 422 with the decision and its reason.
			var d apiDecision
			s.api("POST", "/v1/calls/"+c.ID+"/transfer", map[string]string{"rule": "closed"}, http.StatusUnprocessableEntity, &d)
			if d.Error != "unprocessable" || d.Decision == nil || d.Decision.Reason != "outside_hours" || d.Decision.Rule != "closed" {
				t.Fatalf("transfer to the closed rule: %+v", d)
			}
			// The call plays "outside hours" and returns to the menu; the agent sees
			// the last decision on the call.
			c = s.waitCall()
			var withDec struct {
				Decision *struct {
					Action string `json:"action"`
					Reason string `json:"reason"`
				} `json:"decision"`
			}
			// The decision reaches the call's snapshot through the call's own
			// goroutine, a moment after the API answered.
			deadline := time.Now().Add(e2eWait)
			for {
				s.api("GET", "/v1/calls/"+c.ID, nil, http.StatusOK, &withDec)
				if withDec.Decision != nil || time.Now().After(deadline) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if withDec.Decision == nil || withDec.Decision.Reason != "outside_hours" {
				t.Fatalf("GET /v1/calls/{id} decision = %+v, want the outside_hours one", withDec.Decision)
			}
		}

		// After the outside-hours message the call may still be routing when
		// the snapshot already says in_menu: 409 means "not now", as an agent
		// would, ask again.
		var d apiDecision
		for deadline := time.Now().Add(e2eWait); ; time.Sleep(50 * time.Millisecond) {
			code, raw := s.do("POST", "/v1/calls/"+c.ID+"/transfer", body, true)
			if code == http.StatusConflict && time.Now().Before(deadline) {
				continue
			}
			if code != http.StatusAccepted {
				t.Fatalf("POST /v1/calls/%s/transfer: status %d, want 202; body %s", c.ID, code, raw)
			}
			if err := json.Unmarshal(raw, &d); err != nil {
				t.Fatal(err)
			}
			break
		}
		if d.Action != "transfer" || d.Rule != "felix" || d.Mode != "cold" || d.Destination != e2eFelix {
			t.Fatalf("transfer %v: decision %+v", body, d)
		}

		// The REFER reaches the caller, which accepts it and reports 200; the
		// server then hangs up.
		select {
		case <-call.Done():
		case <-time.After(e2eWait):
			t.Fatalf("transfer %v: the caller's call did not end", body)
		}
		if r := call.EndReason(); r != "remote_bye" {
			t.Errorf("transfer %v: call ended %q, want remote_bye", body, r)
		}
		ev, ok := evs.find(phone.EventRefer)
		if want := "sip:" + e2eFelix + "@" + proxy; !ok || !strings.Contains(ev.Detail, want) || !strings.Contains(ev.Detail, "accepted") {
			t.Fatalf("transfer %v: REFER event %+v, want Refer-To %s accepted", body, ev, want)
		}
		rec := s.record(call.ID())
		if rec.Outcome != records.OutcomeReferred || rec.Rule != "felix" || rec.Destination != e2eFelix {
			t.Errorf("transfer %v: call record outcome %s rule %q destination %q, want referred felix %s",
				body, rec.Outcome, rec.Rule, rec.Destination, e2eFelix)
		}
		var cdr struct {
			Records []struct {
				SIPCallID string `json:"sip_call_id"`
				Outcome   string `json:"outcome"`
			} `json:"records"`
		}
		s.api("GET", "/v1/cdr", nil, http.StatusOK, &cdr)
		found := false
		for _, r := range cdr.Records {
			found = found || (r.SIPCallID == call.ID() && r.Outcome == "referred")
		}
		if !found {
			t.Errorf("GET /v1/cdr has no referred record of %s: %+v", call.ID(), cdr.Records)
		}
		waitFor(t, "the transferred call leaves the registry", func() bool {
			_, ok := s.a.sip.Registry().Get(c.ID)
			return !ok
		})
		s.api("POST", "/v1/calls/"+c.ID+"/transfer", body, http.StatusNotFound, nil)

		// The REFER carried Referred-By (RFC 3892), as the SIP trace shows.
		refer := traced(s.logs.String(), "REFER sip:", call.ID())
		if refer == "" {
			t.Fatalf("transfer %v: no REFER in the SIP trace", body)
		}
		if !strings.Contains(strings.ToLower(refer), "referred-by:") || !strings.Contains(refer, "sip:"+e2eFelix+"@"+proxy) {
			t.Errorf("transfer %v: REFER without Referred-By or Refer-To:\n%s", body, refer)
		}
		// The caller's 200 sipfrag NOTIFY came in before the server's BYE went out.
		logs := s.logs.String()
		notify, bye := traced(logs, "NOTIFY sip:", call.ID()), traced(logs, "BYE sip:", call.ID())
		if !strings.Contains(notify, "dir=in") || !strings.Contains(bye, "dir=out") || !strings.Contains(notify, "SIP/2.0 200") ||
			strings.Index(logs, notify) > strings.Index(logs, bye) {
			t.Errorf("transfer %v: want the 200 sipfrag NOTIFY traced before the BYE:\nNOTIFY %s\nBYE %s", body, notify, bye)
		}
	}
}

// traced returns the first sip_trace log line holding both start (the start of
// a request line) and the SIP Call-ID, "" when there is none.
func traced(logs, start, sipCallID string) string {
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "msg=sip_trace") && strings.Contains(l, start) && strings.Contains(l, sipCallID) {
			return l
		}
	}
	return ""
}

// TestE2EEventStream subscribes to GET /v1/events before a call, then the caller
// presses 1 for the responsible attorney (a cold transfer) and the call's events
// arrive in order, all with the call's id.
func TestE2EEventStream(t *testing.T) {
	t.Parallel()
	s := startE2E(t, e2eOptions{token: e2eToken, shortPrompts: true})
	if code, _ := s.do("GET", "/v1/events", nil, false); code != http.StatusUnauthorized {
		t.Fatalf("GET /v1/events without the token: %d, want 401", code)
	}
	s.addRule(felixRule("cold"))
	st := s.subscribe()

	caller := newE2ECaller(t, e2eCaller, e2eCallerName, true, nil)
	call := s.dial(caller)
	if err := call.SendDTMF(context.Background(), '1'); err != nil {
		t.Fatal(err)
	}
	select {
	case <-call.Done():
	case <-time.After(e2eWait):
		t.Fatal("the transferred call did not end")
	}

	want := []events.Type{events.TypeCallStarted, events.TypeLookupDone, events.TypeIntent,
		events.TypeDecision, events.TypeTransferResult, events.TypeCallEnded}
	var got []events.Event
	for len(got) == 0 || got[len(got)-1].Type != events.TypeCallEnded {
		e := st.next(t)
		got = append(got, e)
		if len(got) > 20 {
			break
		}
	}
	var types []string
	for _, e := range got {
		types = append(types, e.Type.String())
	}
	if fmt.Sprint(types) != fmt.Sprint(typeNames(want)) {
		t.Fatalf("events %v, want %v", types, typeNames(want))
	}
	id := got[0].CallID
	for i, e := range got {
		if e.CallID != id || id == "" {
			t.Errorf("event %d (%s) has call id %q, want %q", i, e.Type, e.CallID, id)
		}
		if i > 0 && e.Seq <= got[i-1].Seq {
			t.Errorf("event %d (%s): seq %d after %d", i, e.Type, e.Seq, got[i-1].Seq)
		}
	}
	data := func(i int, key string) string { return fmt.Sprint(got[i].Data[key]) }
	if data(0, "sip_call_id") != call.ID() || data(0, "caller") != e2eCaller {
		t.Errorf("call_started data %v", got[0].Data)
	}
	if lk, _ := got[1].Data["lookup"].(map[string]any); lk == nil || lk["status"] != "found" {
		t.Errorf("lookup_done data %v", got[1].Data)
	}
	if data(2, "intent") != "responsible" || data(2, "source") != "menu" {
		t.Errorf("intent data %v", got[2].Data)
	}
	if data(3, "action") != "transfer" || data(3, "rule") != "felix" || data(3, "mode") != "cold" {
		t.Errorf("decision data %v", got[3].Data)
	}
	if data(4, "mode") != "cold" || data(4, "outcome") != "success" {
		t.Errorf("transfer_result data %v", got[4].Data)
	}
	if data(5, "outcome") != "transferred" {
		t.Errorf("call_ended data %v", got[5].Data)
	}
}

func typeNames(ts []events.Type) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.String()
	}
	return out
}

// TestE2EMetrics places three calls with known outcomes (an unknown caller hangs
// up in the menu; Ada is transferred cold; Ada asks for a warm transfer nobody
// answers and leaves a message) and checks the scraped counters exactly, and
// that no number or name appears anywhere in the metrics.
func TestE2EMetrics(t *testing.T) {
	t.Parallel()
	// The warm rule's destination: rings and never answers within ring_timeout.
	nobody, err := phone.NewCallee(phone.CalleeConfig{Name: "nobody", Number: "+12175550109", RingDelay: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nobody.Close() })
	s := startE2E(t, e2eOptions{outboundProxy: "sip:" + nobody.Addr().String(), shortPrompts: true, configure: func(c *config.Config) {
		c.IVR.Menu = map[string]string{"1": "responsible", "2": "rule:nobody"}
		c.Transfer.MessageMax = config.Duration(1500 * time.Millisecond)
		c.Transfer.MessageSilence = config.Duration(time.Second)
	}})
	s.addRule(felixRule("cold"))
	s.addRule(map[string]any{"name": "nobody", "to": "+12175550109", "mode": "warm", "ring_timeout": "1s",
		"unavailable": "message"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// 1. An unknown caller hangs up in the menu.
	stranger := newE2ECaller(t, "+12175550000", "Jo Stranger", false, nil)
	call := s.dial(stranger)
	if err := call.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	s.waitIdle()

	// 2. Ada presses 1: cold transfer to Felix, REFER accepted.
	ada := newE2ECaller(t, e2eCaller, e2eCallerName, true, nil)
	call = s.dial(ada)
	if err := call.SendDTMF(ctx, '1'); err != nil {
		t.Fatal(err)
	}
	select {
	case <-call.Done():
	case <-ctx.Done():
		t.Fatal("the cold transfer did not end the call")
	}
	s.waitIdle()

	// 3. Ada presses 2: a warm transfer nobody answers, then a message.
	call = s.dial(ada)
	if err := call.SendDTMF(ctx, '2'); err != nil {
		t.Fatal(err)
	}
	if err := call.StartVoice(1000); err != nil {
		t.Fatal(err)
	}
	select {
	case <-call.Done(): // thank you, goodbye, BYE
	case <-ctx.Done():
		t.Fatal("the message call did not end")
	}
	var msgs struct {
		Messages []struct {
			Rule string `json:"rule"`
		} `json:"messages"`
	}
	s.api("GET", "/v1/messages", nil, http.StatusOK, &msgs)
	if len(msgs.Messages) != 1 || msgs.Messages[0].Rule != "nobody" {
		t.Errorf("GET /v1/messages: %+v, want one message for rule nobody", msgs.Messages)
	}
	if rec := s.record(call.ID()); rec.Outcome != records.OutcomeMessage {
		t.Errorf("message call: record outcome %s, want message", rec.Outcome)
	}
	s.waitIdle()

	want := map[string]float64{
		`matterline_calls_total{outcome="caller_hangup"}`:             1,
		`matterline_calls_total{outcome="transferred"}`:               1,
		`matterline_calls_total{outcome="message"}`:                   1,
		`matterline_transfers_total{mode="cold",outcome="success"}`:   1,
		`matterline_transfers_total{mode="warm",outcome="no_answer"}`: 1,
		`matterline_lookups_total{status="found"}`:                    2,
		`matterline_lookups_total{status="not_found"}`:                1,
		`matterline_sip_responses_total{code="200",method="INVITE"}`:  3,
		`matterline_active_calls`:                                     0,
		`matterline_draining`:                                         0,
		`matterline_dtmf_digits_total{source="rfc4733"}`:              2,
	}
	// The last call's end reaches the metrics right after its teardown.
	var text string
	var got map[string]float64
	deadline := time.Now().Add(e2eWait)
	for {
		code, b := s.do("GET", "/metrics", nil, false)
		if code != http.StatusOK {
			t.Fatalf("GET /metrics: %d", code)
		}
		text = string(b)
		got = parseMetrics(text)
		if sumPrefix(got, "matterline_calls_total{") >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	// Two lookups went to Clio (the third was cached): contacts, then matters.
	if n := got[`matterline_clio_requests_total{class="2xx",code="200",endpoint="contacts"}`]; n < 2 {
		t.Errorf("Clio contacts requests with 200: %v, want at least 2", n)
	}
	if n := got[`matterline_clio_requests_total{class="2xx",code="200",endpoint="matters"}`]; n < 1 {
		t.Errorf("Clio matters requests with 200: %v, want at least 1", n)
	}
	if sumPrefix(got, `matterline_clio_requests_total{class="2xx",code="200",endpoint="other"}`) != 0 {
		t.Error("Clio requests counted under endpoint other")
	}
	if got["matterline_clio_rate_limit_remaining"] <= 0 {
		t.Errorf("matterline_clio_rate_limit_remaining = %v, want the sandbox's remaining requests",
			got["matterline_clio_rate_limit_remaining"])
	}
	for _, prefix := range []string{"matterline_calls_total{", "matterline_transfers_total{", "matterline_lookups_total{"} {
		var n float64
		for k, v := range want {
			if strings.HasPrefix(k, prefix) {
				n += v
			}
		}
		if sum := sumPrefix(got, prefix); sum != n {
			t.Errorf("%s...}: total %v, want %v", prefix, sum, n)
		}
	}
	for _, secret := range []string{"12175552171", "12175550000", "12175550101", "12175550109",
		"Ada", "Quist", "Stranger", "Felix", "Dubinsky", "00101"} {
		if strings.Contains(text, secret) {
			t.Errorf("metrics output contains %q", secret)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", grepLines(text, "matterline_"))
	}
}

// parseMetrics reads "name{labels} value" lines of the text exposition format.
func parseMetrics(text string) map[string]float64 {
	out := map[string]float64{}
	for _, l := range strings.Split(text, "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err != nil {
			continue
		}
		out[l[:i]] = v
	}
	return out
}

func sumPrefix(m map[string]float64, prefix string) float64 {
	var n float64
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			n += v
		}
	}
	return n
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestE2EDrain: with a call up, SIGTERM drains. A new INVITE and an OPTIONS get
// 503, /healthz says draining, the call still exchanges audio (a key press is
// answered with a prompt), and serve returns when the caller hangs up.
func TestE2EDrain(t *testing.T) {
	t.Parallel()
	s := startE2E(t, e2eOptions{drainTimeout: 30 * time.Second})
	if code := sipOptions(t, s.sipUDP); code != 200 {
		t.Fatalf("OPTIONS before the drain: %d, want 200", code)
	}
	caller := newE2ECaller(t, e2eCaller, e2eCallerName, false, nil)
	call := s.dial(caller)

	s.cancel(signalCause{sig: syscall.SIGTERM})
	waitFor(t, "the server drains", s.a.sip.Draining)

	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	late := newE2ECaller(t, "+12175550000", "", false, nil)
	_, err := late.Dial(ctx, s.target, phone.DialOptions{})
	var se *phone.StatusError
	if !errors.As(err, &se) || se.Code != 503 {
		t.Fatalf("INVITE while draining: %v, want 503", err)
	}
	if code := sipOptions(t, s.sipUDP); code != 503 {
		t.Fatalf("OPTIONS while draining: %d, want 503", code)
	}
	code, body := s.do("GET", "/healthz", nil, false)
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "draining") {
		t.Fatalf("GET /healthz while draining: %d %s, want 503 draining", code, body)
	}
	code, body = s.do("GET", "/metrics", nil, false)
	if m := parseMetrics(string(body)); code != http.StatusOK || m["matterline_draining"] != 1 || m["matterline_active_calls"] != 1 {
		t.Fatalf("GET /metrics while draining: %d, draining %v, active calls %v", code,
			m["matterline_draining"], m["matterline_active_calls"])
	}

	// The call goes on: an invalid key is answered with a prompt.
	pressed := time.Now()
	if err := call.SendDTMF(ctx, '7'); err != nil {
		t.Fatal(err)
	}
	if _, err := call.Listen(ctx, phone.Sound{NewTalkspurt: true, Since: pressed, For: 300 * time.Millisecond}); err != nil {
		t.Fatalf("no prompt after a key press while draining: %v", err)
	}
	select {
	case err := <-s.served:
		t.Fatalf("serve returned (%v) with a call up", err)
	default:
	}
	if err := call.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	took, err := s.waitServed(e2eWait)
	if err != nil {
		t.Fatalf("serve: %v", err)
	}
	if took > 5*time.Second {
		t.Errorf("serve returned %s after the last call ended", took)
	}
	if !regexp.MustCompile(`msg="call record" .*end_reason=caller_bye`).MatchString(s.logs.String()) {
		t.Error("no call record of the drained call ending with caller_bye")
	}
}

// TestE2EDrainTimeout: a call that outlasts drain_timeout gets our BYE and serve
// returns.
func TestE2EDrainTimeout(t *testing.T) {
	t.Parallel()
	s := startE2E(t, e2eOptions{drainTimeout: 2 * time.Second})
	caller := newE2ECaller(t, e2eCaller, e2eCallerName, false, nil)
	call := s.dial(caller)
	start := time.Now()
	s.cancel(signalCause{sig: syscall.SIGTERM})
	select {
	case <-call.Done():
	case <-time.After(e2eWait):
		t.Fatal("no BYE after the drain timeout")
	}
	if r := call.EndReason(); r != "remote_bye" {
		t.Errorf("call ended %q, want remote_bye", r)
	}
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("call hung up %s after SIGTERM, before drain_timeout 2s", d)
	}
	if _, err := s.waitServed(e2eWait); err != nil {
		t.Fatalf("serve: %v", err)
	}
}

// TestE2EInterruptHangsUp: any other cause than SIGTERM hangs up at once.
func TestE2EInterruptHangsUp(t *testing.T) {
	t.Parallel()
	s := startE2E(t, e2eOptions{drainTimeout: 30 * time.Second})
	caller := newE2ECaller(t, e2eCaller, e2eCallerName, false, nil)
	call := s.dial(caller)
	s.cancel(signalCause{sig: os.Interrupt})
	select {
	case <-call.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("no BYE within 5s of SIGINT")
	}
	if _, err := s.waitServed(e2eWait); err != nil {
		t.Fatalf("serve: %v", err)
	}
}

// TestE2EHEP: a UDP listener plays the Homer collector; after a call it decodes
// the HEPv3 packets and finds the INVITE in and the 200 OK out.
func TestE2EHEP(t *testing.T) {
	t.Parallel()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	const agent = 4242
	s := startE2E(t, e2eOptions{hepAddress: pc.LocalAddr().String(), hepAgentID: agent})
	caller := newE2ECaller(t, e2eCaller, e2eCallerName, false, nil)
	call := s.dial(caller)
	if err := call.Hangup(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := netipMust(t, s.sipUDP)
	phoneAddr := caller.Addr()

	var invite, ok200 bool
	buf := make([]byte, 65536)
	deadline := time.Now().Add(e2eWait)
	for !(invite && ok200) {
		_ = pc.SetReadDeadline(deadline)
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("HEP: INVITE seen %v, 200 OK seen %v: %v", invite, ok200, err)
		}
		if _, err := hep.Decode(buf[:n]); err != nil {
			t.Fatalf("HEP chunks: %v", err)
		}
		p, err := hep.Parse(buf[:n])
		if err != nil {
			t.Fatalf("HEP packet: %v", err)
		}
		if p.CorrelationID != call.ID() {
			continue
		}
		if p.ProtoType != hep.ProtoSIP || p.AgentID != agent || p.IPProto != hep.IPProtoUDP || p.Time.IsZero() {
			t.Fatalf("HEP packet proto %d agent %d ip proto %d time %v", p.ProtoType, p.AgentID, p.IPProto, p.Time)
		}
		msg := string(p.Payload)
		switch {
		case strings.HasPrefix(msg, "INVITE "):
			if p.Src != phoneAddr || p.Dst != srv {
				t.Errorf("INVITE %s -> %s, want %s -> %s", p.Src, p.Dst, phoneAddr, srv)
			}
			invite = true
		case strings.HasPrefix(msg, "SIP/2.0 200") && regexp.MustCompile(`(?mi)^CSeq:\s*\d+\s+INVITE`).MatchString(msg):
			if p.Src != srv || p.Dst != phoneAddr {
				t.Errorf("200 OK %s -> %s, want %s -> %s", p.Src, p.Dst, srv, phoneAddr)
			}
			ok200 = true
		}
	}
	waitFor(t, "the HEP exporter reports what it sent", func() bool {
		code, b := s.do("GET", "/metrics", nil, false)
		return code == 200 && parseMetrics(string(b))["matterline_hep_dropped_total"] == 0
	})
}

// TestE2ESIPTrace switches the SIP trace on and off at run time and checks the
// server log.
func TestE2ESIPTrace(t *testing.T) {
	t.Parallel()
	s := startE2E(t, e2eOptions{token: e2eToken})
	caller := newE2ECaller(t, e2eCaller, e2eCallerName, false, nil)
	var st struct {
		Enabled bool `json:"enabled"`
	}
	if code, _ := s.do("POST", "/v1/debug/siptrace", map[string]bool{"enabled": true}, false); code != http.StatusUnauthorized {
		t.Fatalf("POST /v1/debug/siptrace without the token: %d, want 401", code)
	}
	s.api("POST", "/v1/debug/siptrace", map[string]bool{"enabled": true}, http.StatusOK, &st)
	if !st.Enabled {
		t.Fatal("trace not enabled")
	}
	call := s.dial(caller)
	_ = call.Hangup(context.Background())
	s.waitIdle()
	if traced(s.logs.String(), "INVITE sip:", call.ID()) == "" {
		t.Fatalf("no traced INVITE of call %s in the log", call.ID())
	}

	s.api("POST", "/v1/debug/siptrace", map[string]bool{"enabled": false}, http.StatusOK, &st)
	s.api("GET", "/v1/debug/siptrace", nil, http.StatusOK, &st)
	if st.Enabled {
		t.Fatal("trace still enabled")
	}
	call = s.dial(caller)
	_ = call.Hangup(context.Background())
	s.waitIdle()
	for _, l := range strings.Split(s.logs.String(), "\n") {
		if strings.Contains(l, "msg=sip_trace") && strings.Contains(l, call.ID()) {
			t.Fatalf("traced after the trace was switched off: %s", l)
		}
	}
}

// TestE2ESIPTraceQuietLog: the trace switched on in the configuration shows
// even when log.level hides info messages.
func TestE2ESIPTraceQuietLog(t *testing.T) {
	t.Parallel()
	s := startE2E(t, e2eOptions{configure: func(c *config.Config) {
		c.Log.Level, c.Log.SIPTrace = "warn", true
	}})
	caller := newE2ECaller(t, e2eCaller, e2eCallerName, false, nil)
	call := s.dial(caller)
	_ = call.Hangup(context.Background())
	s.waitIdle()
	if traced(s.logs.String(), "INVITE sip:", call.ID()) == "" {
		t.Fatalf("no traced INVITE with log.level warn; log:\n%s", s.logs.String())
	}
	if strings.Contains(s.logs.String(), "level=INFO msg=invite") {
		t.Error("info messages logged with log.level warn")
	}
}

// TestE2EServeStartupErrors runs plain `matterline serve` with configurations it
// must refuse, and checks the message names the key.
func TestE2EServeStartupErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	badPrompts := filepath.Join(dir, "prompts")
	if err := os.Mkdir(badPrompts, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(badPrompts, "greeting.wav"), []byte("not a wav file"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, yaml, key string
	}{
		{"open http without token", "http:\n  listen: 0.0.0.0:0\n", "http.listen"},
		{"prompts dir missing", "media:\n  prompts_dir: " + filepath.Join(dir, "nope") + "\n", "media.prompts_dir"},
		{"prompts dir with a bad file", "media:\n  prompts_dir: " + badPrompts + "\n", "media.prompts_dir"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfgPath := filepath.Join(t.TempDir(), "matterline.yaml")
			yaml := tc.yaml + "store:\n  path: " + filepath.Join(t.TempDir(), "m.db") + "\n" +
				"sip:\n  listen: [\"udp://127.0.0.1:0\"]\n"
			if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var out, errb lockedBuffer
			code := run(ctx, []string{"serve", "-config", cfgPath}, stdio{&out, &errb})
			if code != 1 || !strings.Contains(errb.String(), tc.key) {
				t.Fatalf("exit %d, stderr %q; want 1 and a message naming %s", code, errb.String(), tc.key)
			}
			if ctx.Err() != nil {
				t.Fatal("serve ran until the test's timeout")
			}
		})
	}
}

// TestE2EOAuthRedirectPort: with http.listen on port 0 (the demo's fallback),
// the Clio connect page sends Clio the redirect URI of the port actually bound.
// The page needs the admin token; the callback takes only a state it issued.
func TestE2EOAuthRedirectPort(t *testing.T) {
	t.Parallel()
	s := startE2E(t, e2eOptions{configure: func(c *config.Config) {
		c.Clio.ClientID, c.Clio.ClientSecret = "e2e-client", "e2e-secret"
		c.HTTP.AgentToken = "e2e-agent-token-0123456789"
	}})
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string) *http.Response {
		t.Helper()
		res, err := client.Get(s.base + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	// Without the admin token nobody may start connecting another Clio account.
	if res := get("/oauth/clio/start"); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /oauth/clio/start without a token: %d, want 401", res.StatusCode)
	}
	if res := get("/oauth/clio/start?token=e2e-agent-token-0123456789"); res.StatusCode != http.StatusForbidden {
		t.Fatalf("GET /oauth/clio/start with the agent token: %d, want 403", res.StatusCode)
	}
	// A callback whose state start never issued is refused before any
	// exchange with Clio.
	if res := get("/oauth/clio/callback?state=forged-state&code=attacker-code"); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("callback with a forged state: %d, want 400", res.StatusCode)
	}
	res := get("/oauth/clio/start?token=" + e2eToken)
	loc, err := url.Parse(res.Header.Get("Location"))
	if res.StatusCode/100 != 3 || err != nil {
		t.Fatalf("GET /oauth/clio/start: %d, Location %q", res.StatusCode, res.Header.Get("Location"))
	}
	if got, want := loc.Query().Get("redirect_uri"), s.base+"/oauth/clio/callback"; got != want {
		t.Fatalf("redirect_uri %q, want %q", got, want)
	}
	if loc.Query().Get("state") == "" {
		t.Fatal("no state in the authorize URL")
	}
	// Another state than the one issued still fails.
	if res := get("/oauth/clio/callback?state=" + loc.Query().Get("state") + "x&code=c"); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("callback with a state start did not issue: %d, want 400", res.StatusCode)
	}
}

// TestE2EAPIAttacks performs the toll-fraud attacks of the security issue
// against a running server: a DNS-rebinding page (foreign Host), and an agent
// token trying admin routes and destinations.
func TestE2EAPIAttacks(t *testing.T) {
	t.Parallel()
	const agent = "e2e-agent-token-0123456789"
	s := startE2E(t, e2eOptions{configure: func(c *config.Config) { c.HTTP.AgentToken = agent }})
	send := func(method, path, host, token, body string) int {
		t.Helper()
		req, err := http.NewRequest(method, s.base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if host != "" {
			req.Host = host
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	premium := `{"name":"premium","to":"+19005550100"}`
	if code := send("POST", "/v1/rules", "attacker.example", e2eToken, premium); code != http.StatusMisdirectedRequest {
		t.Fatalf("POST /v1/rules with Host attacker.example: %d, want 421", code)
	}
	if code := send("POST", "/v1/rules", "", agent, premium); code != http.StatusForbidden {
		t.Fatalf("POST /v1/rules with the agent token: %d, want 403", code)
	}
	if code := send("POST", "/v1/rules", "", "", premium); code != http.StatusUnauthorized {
		t.Fatalf("POST /v1/rules without a token: %d, want 401", code)
	}
	if code := send("GET", "/v1/rules/premium", "", e2eToken, ""); code != http.StatusNotFound {
		t.Fatalf("the premium rule exists after the attacks: %d", code)
	}
	if code := send("GET", "/v1/calls", "", agent, ""); code != http.StatusOK {
		t.Fatalf("GET /v1/calls with the agent token: %d", code)
	}
	if code := send("POST", "/v1/calls/any/transfer", "", agent, `{"rule":"+19005550100"}`); code != http.StatusNotFound {
		t.Fatalf("agent transfer to a destination: %d, want 404 (no such rule)", code)
	}
	if code := send("GET", "/debug/pprof/", "", agent, ""); code != http.StatusForbidden {
		t.Fatalf("pprof with the agent token: %d, want 403", code)
	}
	if code := send("GET", "/debug/pprof/", "", e2eToken, ""); code != http.StatusOK {
		t.Fatalf("pprof with the admin token: %d, want 200", code)
	}
}
