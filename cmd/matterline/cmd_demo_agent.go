package main

// `matterline demo --agent`: the scripted demo call through a media-stream agent.
// The reference agent (package agentstream/refagent) runs in this process on a
// loopback WebSocket; the demo server sends every call to it (agent.mode first,
// agent.stream_url). The caller hears the agent greet them and read back who
// they are, the agent asks the HTTP API to transfer the call to the responsible
// staff member, and the attorney's phone takes it as in `demo --call`.
//
// `matterline demo --agent-sip` runs the SIP-leg variant instead (agent.uri):
// matterline calls the agent with the lookup in X-Matterline-* headers and the
// agent transfers with REFER to staff-NAME.

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/matterline/matterline/agentstream/refagent"
	"github.com/matterline/matterline/config"
	"github.com/matterline/matterline/lookup"
	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/phone"
	"github.com/matterline/matterline/records"
)

// demoAgentCall runs the demo server with the reference agent (the SIP-leg
// variant when sipAgent, else the media-stream one) and the attorney's phone,
// places the scripted call, prints each step, and stops.
func demoAgentCall(ctx context.Context, s stdio, cfg *config.Config, dir string, sipAgent bool) error {
	ctx, cancel := context.WithTimeout(ctx, demoCallLimit)
	defer cancel()
	p := &stepPrinter{w: s.out, start: time.Now()}
	st, err := openDemoStage(dir, cfg)
	if err != nil {
		return err
	}
	defer st.close()
	log := st.log

	tts, err := media.NewTTS(media.TTSConfig{CacheDir: filepath.Join(dir, "tts-cache")})
	if err != nil {
		return err
	}
	var speaker refagent.Speaker
	voice := "a tone per sentence (espeak-ng not installed)"
	if tts.Available() {
		speaker, voice = tts, "espeak-ng speech"
	}
	onEvent := func(ev refagent.Event) { p.stepAt(ev.Time, "agent", "%s", ev.Text) }
	agentLog := log.With("component", "refagent")
	var streamAgent *refagent.Agent
	var agentLine string
	if sipAgent {
		agent, err := refagent.StartSIP(refagent.SIPConfig{TTS: speaker, OnEvent: onEvent, Logger: agentLog})
		if err != nil {
			return err
		}
		defer agent.Close()
		cfg.Agent.Mode, cfg.Agent.URI = "first", agent.URI()
		agentLine = fmt.Sprintf("reference SIP agent listening on %s (agent.uri), speaking with %s, transfers with REFER", agent.URI(), voice)
	} else {
		agent, err := refagent.Start("127.0.0.1:0", refagent.Config{TTS: speaker, OnEvent: onEvent, Logger: agentLog})
		if err != nil {
			return err
		}
		defer agent.Close()
		streamAgent = agent
		cfg.Agent.Mode, cfg.Agent.StreamURL = "first", agent.URL()
		agentLine = fmt.Sprintf("reference agent listening on %s (agent.stream_url), speaking with %s, transfers with the agent token", agent.URL(), voice)
	}

	if err := st.start(ctx, cfg, p); err != nil {
		return err
	}
	a, caller, attorney := st.a, st.caller, st.attorney
	if streamAgent != nil {
		streamAgent.SetAPI("http://"+a.HTTPAddr(), cfg.HTTP.AgentToken)
	}
	p.step("matterline", "demo server up: SIP %s, HTTP %s, sandbox Clio, sample rules, agent.mode first", strings.Join(a.sip.Addrs(), " "), a.HTTPAddr())
	p.step("agent", "%s", agentLine)
	p.step("attorney", "phone of Felix Dubinsky (%s) listening on %s, the outbound proxy", demoAttorney, attorney.Addr())

	summary, runErr := demoAgentScript(ctx, p, a, caller, attorney, sipAgent)
	return st.finish(s, p, runErr, "demo agent call OK: "+summary)
}

// demoAgentScript is the call: answered, lookup, the agent speaks, the agent's
// transfer reaches the attorney, audio both ways, hang-up, record.
func demoAgentScript(ctx context.Context, p *stepPrinter, a *app, caller *phone.Caller, attorney *phone.Callee, sipAgent bool) (string, error) {
	agentLeg, how := "stream", "through the API"
	if sipAgent {
		agentLeg, how = "SIP leg (INVITE with X-Matterline-* headers)", "with REFER"
	}
	fail := func(step string, err error) error { return &stepError{step: step, err: err} }
	target := "sip:demo@" + strings.TrimPrefix(a.sip.Addrs()[0], "udp://")
	dctx, cancel := context.WithTimeout(ctx, demoStepLimit)
	call, err := caller.Dial(dctx, target, phone.DialOptions{})
	cancel()
	if err != nil {
		return "", fail("call answered", err)
	}
	defer func() { _ = call.Hangup(context.WithoutCancel(ctx)) }()
	snap, err := waitLookup(ctx, a.sip.Registry(), call.ID())
	if err != nil {
		return "", fail("lookup", err)
	}
	res := snap.Lookup
	if res.Status != lookup.StatusFound || res.Staff == nil {
		return "", fail("lookup", fmt.Errorf("caller not recognised: status %s %s", res.Status, res.Reason))
	}
	p.step("matterline", "lookup: found %s, matter %s, responsible staff %s; the call goes to the agent's %s",
		res.Contact.Name, res.Matter.DisplayNumber, res.Staff.Name, agentLeg)
	h, err := listen(ctx, call, phone.Sound{For: time.Second})
	if err != nil {
		return "", fail("caller hears the agent", err)
	}
	p.stepAt(h.First, "caller", "hears the agent (%.0f dBFS)", h.Level)
	if err := call.StartVoice(demoCallerVoiceHz); err != nil {
		return "", fail("caller talks", err)
	}

	actx, cancel := context.WithTimeout(ctx, 2*demoStepLimit) // the agent speaks first
	leg, err := attorney.Next(actx)
	cancel()
	if err != nil {
		return "", fail("attorney's phone rings", err)
	}
	defer func() { _ = leg.Hangup(context.WithoutCancel(ctx)) }()
	if _, err := listen(ctx, leg, phone.Sound{For: time.Second}); err != nil {
		return "", fail("attorney hears the whisper", err)
	}
	qctx, cancel := context.WithTimeout(ctx, demoStepLimit)
	_ = leg.WaitQuiet(qctx, 400*time.Millisecond)
	cancel()
	p.step("attorney", "whisper heard")
	if err := leg.SendDTMF(ctx, demoAcceptDigit); err != nil {
		return "", fail("attorney presses 1", err)
	}
	if err := leg.StartVoice(demoAttorneyHz); err != nil {
		return "", fail("attorney presses 1", err)
	}
	_, _, errCaller, errAttorney := hearEachOther(ctx, call, leg)
	if err := errors.Join(errCaller, errAttorney); err != nil {
		return "", fail("bridged audio both ways", err)
	}
	p.step("matterline", "bridged: caller and attorney hear each other")
	if err := call.Hangup(ctx); err != nil {
		return "", fail("caller hangs up", err)
	}
	select {
	case <-leg.Done():
	case <-time.After(5 * time.Second):
		return "", fail("attorney's call ends", errors.New("no BYE reached the attorney's phone within 5s"))
	}
	rec, err := waitRecord(ctx, a.calls, call.ID())
	if err != nil {
		return "", fail("call record written", err)
	}
	agentPart := ""
	if rec.Agent {
		agentPart = fmt.Sprintf("; the agent's part: %dms, transfer %s", rec.AgentMS, rec.AgentTransfer)
	}
	p.step("matterline", "call record: outcome %s, rule %s (%s) to %s, ended %s%s",
		rec.Outcome, rec.Rule, rec.Mode, rec.Destination, rec.EndReason, agentPart)
	if rec.Outcome != records.OutcomeBridged {
		return "", fail("call record written", fmt.Errorf("outcome %s, want bridged", rec.Outcome))
	}
	// The record carries the agent's part, SIP or stream agent alike.
	if !rec.Agent || rec.AgentMS <= 0 || rec.AgentTransfer == "" {
		return "", fail("call record written", fmt.Errorf("no agent part in the record: agent %t, %dms, transfer %q",
			rec.Agent, rec.AgentMS, rec.AgentTransfer))
	}
	return fmt.Sprintf("the reference agent spoke to %s and transferred the call to %s %s, bridged, in %s",
		res.Contact.Name, res.Staff.Name, how, p.since(time.Now())), nil
}
