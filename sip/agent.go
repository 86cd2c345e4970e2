package sip

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	gosip "github.com/emiago/sipgo/sip"

	"github.com/matterline/matterline/lookup"
	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/records"
	"github.com/matterline/matterline/routing"
)

// AgentMode is when calls go to the voice-AI agent (agent.mode). The zero value
// means the default (off).
type AgentMode uint8

const (
	AgentModeDefault  AgentMode = iota
	AgentModeOff                // no agent
	AgentModeFirst              // every call goes to the agent after the lookup, instead of the menu
	AgentModeFallback           // the agent takes the calls the menu cannot serve (see agentWhy)
)

func (m AgentMode) String() string {
	switch m {
	case AgentModeOff, AgentModeDefault:
		return "off"
	case AgentModeFirst:
		return "first"
	case AgentModeFallback:
		return "fallback"
	}
	return "unknown"
}

// ParseAgentMode reads agent.mode ("off", "first", "fallback"; "" = off).
func ParseAgentMode(s string) (AgentMode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "off":
		return AgentModeOff, nil
	case "first":
		return AgentModeFirst, nil
	case "fallback":
		return AgentModeFallback, nil
	}
	return AgentModeDefault, fmt.Errorf("sip: agent mode %q: want off, first or fallback", s)
}

// DefaultAgentAnswerTimeout bounds the wait for the agent to answer; after it
// the call goes to the menu.
const DefaultAgentAnswerTimeout = 8 * time.Second

// maxAgentHeader bounds an X-Matterline-* header value, in bytes.
const maxAgentHeader = 128

func (c *Config) agentDefaults() error {
	if c.AgentMode == AgentModeDefault {
		c.AgentMode = AgentModeOff
	}
	if c.AgentAnswerTimeout <= 0 {
		c.AgentAnswerTimeout = DefaultAgentAnswerTimeout
	}
	c.AgentURI = strings.TrimSpace(stripCRLF(c.AgentURI))
	if c.AgentURI != "" {
		kind, err := routing.DestinationKindOf(c.AgentURI)
		if err != nil {
			return fmt.Errorf("sip: agent uri: %w", err)
		}
		if kind != routing.DestURI {
			return fmt.Errorf("sip: agent uri %q: want a sip: or sips: URI", c.AgentURI)
		}
	}
	return nil
}

// agentWhy is why a call goes to the agent.
type agentWhy uint8

const (
	agentWhyUnknown    agentWhy = iota
	agentWhyFirst               // agent.mode first: every call
	agentWhyClosed              // fallback: the responsible rule is outside its hours (or closed today)
	agentWhyMenuFailed          // fallback: the menu's attempts are exhausted (silences, unmapped digits)
)

func (w agentWhy) String() string {
	switch w {
	case agentWhyFirst:
		return "first"
	case agentWhyClosed:
		return "closed"
	case agentWhyMenuFailed:
		return "menu_failed"
	}
	return "unknown"
}

// agentEnabled reports whether calls can go to a SIP agent in mode m (a
// media-stream agent has its own path, agent_stream.go).
func (s *Server) agentEnabled(m AgentMode) bool {
	return s.cfg.AgentMode == m && s.cfg.AgentURI != ""
}

// agentAtStart runs when the call is answered, before the menu: with agent.mode
// first every call goes to the agent; with fallback, a call whose responsible
// rule is outside its hours (or closed today) does. True when the call left (the
// agent or a transfer it asked for took it, or the call ended); false: the menu
// follows.
func (c *call) agentAtStart() bool {
	switch {
	case c.srv.agentEnabled(AgentModeFirst):
		if !c.waitLookup() {
			return true
		}
		return c.toAgent(agentWhyFirst)
	case c.srv.agentEnabled(AgentModeFallback):
		if !c.waitLookup() {
			return true
		}
		if c.responsibleClosed() {
			return c.toAgent(agentWhyClosed)
		}
	}
	return false
}

// agentAfterMenu runs when the menu's attempts are exhausted: with agent.mode
// fallback the agent takes the call. False: goodbye as before.
func (c *call) agentAfterMenu() bool {
	if !c.srv.agentEnabled(AgentModeFallback) || c.ending() {
		return false
	}
	return c.toAgent(agentWhyMenuFailed)
}

// responsibleDecision asks the router what "responsible" means for the call now.
func (c *call) responsibleDecision() routing.Decision {
	if c.srv.router == nil {
		return routing.Decision{Action: routing.ActionNone, Reason: routing.ReasonNoRule}
	}
	ctx, cancel := context.WithTimeout(c.ctx, routerTimeout)
	defer cancel()
	return c.decide(ctx, c.srv.router, routing.Intent{Kind: routing.IntentResponsible})
}

// responsibleClosed: the caller's responsible rule exists and is unavailable
// because of its hours or a closure.
func (c *call) responsibleClosed() bool {
	d := c.responsibleDecision()
	return d.Action == routing.ActionUnavailable &&
		(d.Reason == routing.ReasonOutsideHours || d.Reason == routing.ReasonClosedToday)
}

// AgentContext is what the agent is told about a call: the X-Matterline-*
// headers of the SIP agent's INVITE, and the start message of a stream agent.
// IDs and names only, never notes. Values are sanitized (agentValue).
type AgentContext struct {
	CallID      string // matterline's call id (X-Matterline-Call-Id)
	Lookup      string // found | not_found | ambiguous | error
	ContactID   int64
	ContactName string
	MatterID    int64
	Matter      string // the matter's display number
	StaffID     int64
	Staff       string
	// Open: the caller's responsible rule would take a transfer now (within its
	// hours, not closed); false also when there is no such rule.
	Open bool
}

// agentContext builds the call's AgentContext from the lookup and the rules.
func (c *call) agentContext() AgentContext {
	info := c.info()
	res := info.Lookup
	ac := AgentContext{CallID: c.id, Lookup: agentLookupStatus(res.Status)}
	if res.Contact != nil {
		ac.ContactID, ac.ContactName = res.Contact.ID, agentValue(res.Contact.Name)
	}
	if res.Matter != nil {
		ac.MatterID, ac.Matter = res.Matter.ID, agentValue(res.Matter.DisplayNumber)
	}
	if res.Staff != nil {
		ac.StaffID, ac.Staff = res.Staff.ID, agentValue(res.Staff.Name)
	}
	ac.Open = c.responsibleDecision().Action == routing.ActionTransfer
	return ac
}

// agentLookupStatus maps a lookup status onto the four values of
// X-Matterline-Lookup: a lookup that did not run (unconfigured, unknown) is an
// error for the agent.
func agentLookupStatus(s lookup.Status) string {
	switch s {
	case lookup.StatusFound, lookup.StatusNotFound, lookup.StatusAmbiguous:
		return s.String()
	}
	return "error"
}

// Headers renders ac as the X-Matterline-* headers of the agent's INVITE; absent
// values (no contact, no matter) are left out.
func (ac AgentContext) Headers() []gosip.Header {
	hs := []gosip.Header{
		gosip.NewHeader("X-Matterline-Call-Id", agentValue(ac.CallID)),
		gosip.NewHeader("X-Matterline-Lookup", agentValue(ac.Lookup)),
	}
	add := func(name, v string) {
		if v = agentValue(v); v != "" {
			hs = append(hs, gosip.NewHeader(name, v))
		}
	}
	id := func(n int64) string {
		if n <= 0 {
			return ""
		}
		return strconv.FormatInt(n, 10)
	}
	add("X-Matterline-Contact-Id", id(ac.ContactID))
	add("X-Matterline-Contact-Name", ac.ContactName)
	add("X-Matterline-Matter-Id", id(ac.MatterID))
	add("X-Matterline-Matter", ac.Matter)
	add("X-Matterline-Staff-Id", id(ac.StaffID))
	add("X-Matterline-Staff", ac.Staff)
	hs = append(hs, gosip.NewHeader("X-Matterline-Open", strconv.FormatBool(ac.Open)))
	return hs
}

// agentValue makes s safe as a header value: valid UTF-8, no control characters
// (CR, LF, NUL, tabs become spaces or go), spaces collapsed and trimmed, at most
// maxAgentHeader bytes cut at a rune boundary.
func agentValue(s string) string {
	s = strings.ToValidUTF8(s, "")
	var b strings.Builder
	space := false
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029' {
			r = ' '
		}
		if r == ' ' {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			if b.Len()+1 > maxAgentHeader {
				break
			}
			b.WriteByte(' ')
		}
		space = false
		if b.Len()+utf8.RuneLen(r) > maxAgentHeader {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

// agentDecision is the decision for the SIP agent's INVITE: its URI, the
// caller's number shown (the agent sees who calls).
func (c *call) agentDecision() routing.Decision {
	return routing.Decision{Action: routing.ActionTransfer, Mode: routing.ModeWarm,
		Destination: c.srv.cfg.AgentURI, CallerID: routing.CallerIDCaller, Reason: routing.ReasonMatched}
}

// toAgent hands the call to the agent (the stream agent when one is plugged in,
// else agent.uri) and runs the agent's part: the caller hears ringback until the
// agent answers (at most Config.AgentAnswerTimeout), then the two are bridged
// like a warm transfer (no whisper, no accept digit) until the agent asks for a
// transfer (REFER, or the HTTP API), hangs up (the call ends) or fails (the
// menu). True when the call left; false when the menu should take it (the agent
// was unreachable, busy, did not answer, or its media stopped).
func (c *call) toAgent(why agentWhy) bool {
	c.log.Info("call goes to the agent", "why", why.String())
	callerSess := c.session()
	if callerSess == nil {
		return true
	}
	ac := c.agentContext()
	dec := c.agentDecision()
	leg, err := c.dialOut(dec, ac.Headers()...)
	if err != nil {
		c.log.Warn("agent not dialled: menu instead", "error", err)
		return false
	}
	c.out = leg
	c.setAgentUsed()
	fail := func(what string) bool {
		c.stopRingback()
		if l := c.out; l != nil && !l.provisional && !l.final {
			// Nothing came back (an agent that is down): no CANCEL is
			// possible (RFC 3261 §9.1); the leg is released at once, and a
			// late 2xx is still ACKed and ended with BYE (strayResponse).
			c.out = nil
			l.release()
		}
		c.dropLeg()
		if c.ending() {
			return true
		}
		c.log.Warn("agent unavailable: menu instead", "result", what)
		return false
	}
	c.startRingback()
	switch res := c.waitAnswer(leg, c.srv.cfg.AgentAnswerTimeout); res {
	case answerOK:
	case answerAbandoned:
		return fail("abandoned")
	case answerBusy:
		return fail("busy")
	case answerNoAnswer:
		return fail("no_answer")
	default:
		return fail("failed")
	}
	c.stopRingback()
	bctx, cancel := context.WithTimeout(c.ctx, 2*time.Second)
	br, err := media.NewBridge(bctx, callerSess, leg.sess, media.BridgeOptions{Logger: c.log})
	cancel()
	if err != nil {
		c.log.Warn("agent bridge failed", "error", err)
		return fail("bridge")
	}
	leg.bridged, c.in.bridged = true, true
	c.agentSince(c.srv.now())
	c.setState(StateAgent)
	c.log.Info("agent answered", "caller_codec", callerSess.Codec().Name, "agent_codec", leg.sess.Codec().Name)
	if c.in.peerHeld {
		c.reflectHold(&leg.side, true)
	}
	stopBridge := func() {
		br.Stop()
		c.agentUntil(c.srv.now())
		leg.bridged, c.in.bridged = false, false
		c.setState(StateRouting)
	}
	for {
		select {
		case ev := <-c.events:
			if in, ok := ev.(*injectEvent); ok {
				// The HTTP API's transfer while the caller is with the agent: the
				// agent leg ends (BYE, no NOTIFY: it asked for nothing).
				in.reply <- nil
				stopBridge()
				c.detachAgent(leg, 0)
				return c.agentTransfer(in.intent, in.dec, IntentSourceAPI, nil)
			}
			c.handle(ev)
		case ev := <-leg.inbox:
			if r, ok := ev.(*reqEvent); ok && r.req.Method == gosip.REFER {
				tr, ok := c.onAgentRefer(leg, r)
				if !ok {
					continue // refused (403) or not admitted; the caller stays with the agent
				}
				stopBridge()
				report := c.detachAgent(leg, tr.subID)
				return c.agentTransfer(tr.intent, tr.dec, IntentSourceAgent, report)
			}
			c.handleLeg(leg, ev)
			if leg.gone && !c.ending() {
				c.finish(EndCalleeBye)
			}
		case <-leg.sess.Timeout():
			c.log.Info("agent rtp inactivity timeout: menu instead")
			br.Stop()
			c.agentUntil(c.srv.now())
			c.dropLeg()
			c.setState(StateInMenu)
			return false
		case <-br.Done():
			c.finish(EndError)
		case <-c.ctx.Done():
			br.Stop()
			c.agentUntil(c.srv.now())
			return true // teardown hangs up the agent leg
		}
	}
}

// agentTransfer executes a transfer the agent (or the API, while the caller was
// with the agent) asked for, on the caller's leg: the rule's transfer (cold or
// warm) or its unavailable handling. report, when set, gets the sipfrag code for
// the agent once the outcome is known (agentOutcome), else after execute. When
// the call does not leave, the caller hears what execute says and the menu.
func (c *call) agentTransfer(intent routing.Intent, dec routing.Decision, src IntentSource, report func(int)) bool {
	c.agentReport = report
	c.notifyIntent(intent, src)
	c.notifyDecision(dec)
	c.addIntent(intent)
	c.setAgentTransfer(intent)
	c.log.Info("agent transfer", "intent", intent.String(), "action", dec.Action.String(), "rule", dec.Rule,
		"mode", dec.Mode.String(), "reason", string(dec.Reason))
	f := c.execute(dec)
	if c.agentReport != nil {
		code := 480 // unavailable handling, no outcome of a transfer
		if f.left && !c.ending() {
			code = 200
		}
		if c.ending() {
			code = 487
		}
		c.agentReport(code)
		c.agentReport = nil
	}
	if f.left || c.ending() {
		return true
	}
	c.setState(StateInMenu)
	// execute's prompts before the menu (nobody_available, outside_hours); the
	// menu plays its greeting itself.
	var before []string
	for _, p := range f.next {
		if p != media.PromptGreeting {
			before = append(before, p)
		}
	}
	c.playPrompts(before...)
	return c.ending()
}

// agentOutcome tells the agent how the transfer it asked for ended, once: setOutcome
// calls it with every transfer outcome.
func (c *call) agentOutcome(o records.Outcome) {
	if c.agentReport == nil {
		return
	}
	code := sipfragCode(o)
	if code == 0 {
		return
	}
	c.agentReport(code)
	c.agentReport = nil
}

// sipfragCode is the status line the agent's final NOTIFY carries for a transfer
// outcome (0: not a final outcome).
func sipfragCode(o records.Outcome) int {
	switch o {
	case records.OutcomeBridged, records.OutcomeReferred:
		return 200
	case records.OutcomeBusy:
		return 486
	case records.OutcomeDeclined:
		return 603
	case records.OutcomeNoAnswer:
		return 480
	case records.OutcomeAbandoned:
		return 487
	case records.OutcomeFailed:
		return 503
	}
	return 0
}

// ---- the call record's agent fields ----

func (c *call) setAgentUsed() {
	c.mu.Lock()
	c.agent.used = true
	c.mu.Unlock()
}

func (c *call) agentSince(t time.Time) {
	c.mu.Lock()
	c.agent.since = t
	c.mu.Unlock()
}

// agentUntil adds the time since agentSince to the agent's part.
func (c *call) agentUntil(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.agent.since.IsZero() {
		if d := t.Sub(c.agent.since); d > 0 {
			c.agent.talk += d
		}
		c.agent.since = time.Time{}
	}
}

func (c *call) setAgentTransfer(in routing.Intent) {
	c.mu.Lock()
	c.agent.transfer = in.String()
	c.mu.Unlock()
}

// agentPart is the agent's part of a call, for the call record (guarded by
// call.mu).
type agentPart struct {
	used     bool          // the call was offered to the agent
	since    time.Time     // bridged to the agent since (zero: not now)
	talk     time.Duration // time bridged to the agent
	transfer string        // the intent of the agent's accepted transfer
}

// recordAgent copies the agent's part into rec (cdr.go's record calls it under
// call.mu).
func (p agentPart) recordAgent(rec *records.CallRecord, end time.Time) {
	rec.Agent = p.used
	talk := p.talk
	if !p.since.IsZero() && end.After(p.since) {
		talk += end.Sub(p.since)
	}
	rec.AgentMS = talk.Milliseconds()
	rec.AgentTransfer = p.transfer
}
