package main

// The SIP server reports what happens on calls through sip.Observer and every SIP
// message through sip.MessageTracer; these adapters fan them out to the event bus
// (GET /v1/events), Prometheus metrics, the log and the HEP exporter.

import (
	"log/slog"
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
func (o observer) ActiveCalls(n int)                   { o.m.SetActiveCalls(n) }

func (o observer) RTPStats(_ string, st media.Stats) {
	o.m.RTPIn(int(st.PacketsIn))
	o.m.RTPOut(int(st.PacketsOut))
	o.m.RTPDropped("malformed", int(st.Dropped))
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
