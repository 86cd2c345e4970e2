package main

// The SIP server reports what happens on calls through sip.Observer and every SIP
// message through sip.MessageTracer; these adapters fan them out to the event bus
// (GET /v1/events), Prometheus metrics, the log and the HEP exporter.

import (
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/matterline/matterline/events"
	"github.com/matterline/matterline/hep"
	"github.com/matterline/matterline/lookup"
	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/metrics"
	"github.com/matterline/matterline/records"
	"github.com/matterline/matterline/routing"
	"github.com/matterline/matterline/sip"
)

// clioMetrics counts the Clio API requests by endpoint and status and records
// Clio's X-RateLimit-Remaining; it wraps the transport of the lookup's HTTP
// client. Only the path's resource name becomes a label (metrics maps anything
// unknown to "other"), never a query or an id.
type clioMetrics struct {
	next http.RoundTripper
	m    *metrics.Metrics
}

func (t clioMetrics) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := t.next.RoundTrip(r)
	code := 0
	if err == nil {
		code = res.StatusCode
		if n, err := strconv.Atoi(res.Header.Get("X-RateLimit-Remaining")); err == nil {
			t.m.ClioRateLimitRemaining(n)
		}
	}
	t.m.ClioRequest(clioEndpoint(r.URL.Path), code)
	return res, err
}

// clioEndpoint names a Clio request for metrics: "/api/v4/contacts.json" is
// contacts, "/api/v4/users/who_am_i.json" who_am_i, "/oauth/token" token.
func clioEndpoint(path string) string {
	if strings.HasSuffix(path, "/oauth/token") {
		return "token"
	}
	_, rest, ok := strings.Cut(path, "/api/v4/")
	if !ok {
		return metrics.Other
	}
	if strings.Contains(rest, "who_am_i") {
		return "who_am_i"
	}
	first, _, _ := strings.Cut(rest, "/")
	return strings.TrimSuffix(first, ".json")
}

// newMetrics knows the outcome words of sip and records as label values.
func newMetrics() *metrics.Metrics {
	var outcomes []string
	for _, o := range records.Outcomes() {
		outcomes = append(outcomes, o.String())
	}
	return metrics.New(metrics.WithTransferOutcomes(outcomes...), metrics.WithCallOutcomes(outcomes...))
}

// observer publishes call events and counts them. It never blocks: the bus drops
// slow subscribers and metrics are atomic.
type observer struct {
	bus *events.Bus
	m   *metrics.Metrics
}

var _ sip.Observer = observer{}

func (o observer) publish(t events.Type, callID string, data map[string]any) {
	o.bus.Publish(events.Event{Type: t, CallID: callID, Data: data})
}

func (o observer) CallStarted(c sip.CallSnapshot) {
	o.m.CallStarted()
	o.publish(events.TypeCallStarted, c.ID, map[string]any{
		"caller": c.Caller, "called": c.Callee, "sip_call_id": c.SIPCallID, "started": c.Started,
	})
}

func (o observer) LookupDone(callID string, res lookup.Result, took time.Duration) {
	o.m.Lookup(res.Status, took)
	o.publish(events.TypeLookupDone, callID, map[string]any{
		"lookup": res.Contract(), "reason": res.Reason, "cached": res.Cached, "took_ms": took.Milliseconds(),
	})
}

func (o observer) Intent(callID string, in routing.Intent, src sip.IntentSource) {
	o.publish(events.TypeIntent, callID, map[string]any{"intent": in.String(), "source": src.String()})
}

func (o observer) Decision(callID string, d routing.Decision) {
	o.publish(events.TypeDecision, callID, decisionJSON(d))
}

func (o observer) TransferResult(callID string, mode routing.Mode, outcome, detail string) {
	o.m.Transfer(mode, outcome)
	o.publish(events.TypeTransferResult, callID, map[string]any{
		"mode": mode.String(), "outcome": outcome, "detail": detail,
	})
}

func (o observer) CallEnded(callID string, end sip.CallEnd) {
	o.m.CallEnded(end.Outcome)
	o.publish(events.TypeCallEnded, callID, map[string]any{
		"reason": end.Reason.String(), "outcome": end.Outcome,
		"duration_s": end.Duration.Seconds(), "talk_s": end.Talk.Seconds(),
	})
}

func (o observer) SIPResponse(method string, code int) { o.m.SIPResponse(method, code) }
func (o observer) DTMF(_ string, source string)        { o.m.DTMFDigit(source) }
func (o observer) Draining(d bool)                     { o.m.SetDraining(d) }

// ActiveCalls is ignored: the active-calls gauge follows CallStarted and
// CallEnded, which come in pairs. The registry's count cannot be mixed in: a
// call whose menu or transfer goroutine still runs leaves the registry before
// its CallEnded arrives, and setting the gauge to the count then made the later
// CallEnded take it below zero.
func (o observer) ActiveCalls(int) {}

func (o observer) RTPStats(_ string, st media.Stats) {
	o.m.RTPIn(int(st.PacketsIn))
	o.m.RTPOut(int(st.PacketsOut))
	o.m.RTPDropped("malformed", int(st.Dropped))
	o.m.RTPDropped("wrong_source", int(st.WrongSource))
	o.m.RTPDropped("srtp_auth", int(st.SRTPAuth))
	o.m.RTPDropped("srtp_replay", int(st.SRTPReplay))
}

// decisionJSON is the decision object of DESIGN.md's `rules test --json` contract.
func decisionJSON(d routing.Decision) map[string]any {
	return map[string]any{
		"action": d.Action.String(), "rule": d.Rule, "mode": d.Mode.String(),
		"destination": d.Destination, "caller_id": d.CallerID.String(), "reason": string(d.Reason),
	}
}

// tracer logs SIP messages while the log trace is on and always sends them to the
// HEP collector when one is configured.
type tracer struct {
	log   *slog.Logger
	logOn atomic.Bool
	hep   *hep.Exporter // nil: no collector
	srv   *sip.Server
}

func (t *tracer) TraceSIP(m sip.TracedMessage) {
	if t.logOn.Load() {
		dir := "in"
		if m.Outbound {
			dir = "out"
		}
		t.log.Info("sip_trace", "dir", dir, "transport", m.Network, "src", m.Src.String(),
			"dst", m.Dst.String(), "message", string(m.Data))
	}
	if t.hep != nil {
		proto := uint8(hep.IPProtoUDP)
		if m.Network == "tcp" {
			proto = hep.IPProtoTCP
		}
		t.hep.Send(hep.Packet{Time: m.Time, IPProto: proto, Src: m.Src, Dst: m.Dst,
			ProtoType: hep.ProtoSIP, CorrelationID: m.CallID(), Payload: m.Data})
	}
}

// Set and Enabled switch the log trace (POST /v1/debug/siptrace); the server keeps
// capturing while a HEP collector is configured.
func (t *tracer) Set(on bool) {
	t.logOn.Store(on)
	t.srv.SetSIPTrace(on || t.hep != nil)
}

func (t *tracer) Enabled() bool { return t.logOn.Load() }
