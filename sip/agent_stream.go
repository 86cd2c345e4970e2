package sip

import (
	"context"
	"strconv"

	"github.com/matterline/matterline/lookup"
	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/routing"
)

// A media-stream agent (agent.stream_url): after the lookup the caller's audio
// goes to a self-hosted voice agent over a WebSocket and the agent's audio comes
// back (package agentstream, plugged in with WithAgentStream). The agent
// transfers through the HTTP API (Server.Transfer), which stops the stream and
// runs the decision; a stream that ends otherwise returns the caller to the menu.

// AgentParam is one piece of the lookup context handed to an agent: the same
// names as the SIP agent's X-Matterline-* headers, lower case with underscores
// (call_id, lookup, contact_id, contact_name, matter_id, matter, staff_id, staff,
// open).
type AgentParam struct {
	Name, Value string
}

// AgentStreamRequest opens one call's stream.
type AgentStreamRequest struct {
	Call   CallInfo
	Params []AgentParam
	Media  *media.Session
}

// AgentStreamer opens media streams to the agent (package agentstream
// implements it through an adapter in cmd/matterline).
type AgentStreamer interface {
	OpenStream(ctx context.Context, req AgentStreamRequest) (AgentStream, error)
}

// AgentStream is one call's running stream.
type AgentStream interface {
	// DTMF forwards a key the caller pressed; it never blocks.
	DTMF(key rune)
	// Stop sends the stop message and ends the audio both ways; idempotent.
	Stop()
	// Wait waits for the stream's goroutines (the WebSocket close included).
	Wait()
	// Done is closed when the stream ended on its own or by Stop.
	Done() <-chan struct{}
	// Reason says why it ended, for logs ("agent_closed", "pong_timeout", ...).
	Reason() string
}

// agentStreamConf is the server's stream agent (WithAgentStream).
type agentStreamConf struct {
	mode     AgentMode
	streamer AgentStreamer
}

// WithAgentStream sends calls to a media-stream agent as mode says.
func WithAgentStream(mode AgentMode, s AgentStreamer) Option {
	return func(srv *Server) { srv.agentStream = agentStreamConf{mode: mode, streamer: s} }
}

// agentStreamFirst runs the stream for an answered call when agent.mode is
// first; true when the call left (transferred or ended), false when it goes on
// to the menu.
func (c *call) agentStreamFirst() bool {
	a := c.srv.agentStream
	if a.streamer == nil || a.mode != AgentModeFirst {
		return false
	}
	return c.runAgentStream()
}

// agentStreamFallback runs the stream once per call when the menu's attempts
// ran out and agent.mode is fallback. ran reports whether the agent was tried
// (the menu then starts over instead of saying goodbye); left that the call
// left.
func (c *call) agentStreamFallback() (ran, left bool) {
	a := c.srv.agentStream
	if a.streamer == nil || a.mode != AgentModeFallback || c.agentTried {
		return false, false
	}
	return true, c.runAgentStream()
}

// runAgentStream hands the call to the stream agent after the lookup and serves
// it until the stream ends (false: back to the menu, which plays the greeting
// again), an API transfer is decided (its execution runs here) or the call ends.
func (c *call) runAgentStream() (left bool) {
	c.agentTried = true
	if !c.waitLookup() {
		return true
	}
	sess := c.session()
	if sess == nil {
		return true
	}
	c.setAgentUsed() // the record's agent part, as for a SIP agent (agent.go)
	req := AgentStreamRequest{Call: c.info(), Params: c.agentParams(), Media: sess}
	var st AgentStream
	err := c.await(func(ctx context.Context) (err error) {
		st, err = c.srv.agentStream.streamer.OpenStream(ctx, req)
		return err
	})
	if err != nil {
		if c.ending() {
			return true
		}
		c.log.Warn("agent stream failed to open; menu", "error", err)
		return false
	}
	c.log.Info("call handed to the stream agent")
	c.setState(StateAgent)
	c.agentSince(c.srv.now())
	defer func() { c.agentUntil(c.srv.now()) }()
	stop := func() {
		_ = c.await(func(context.Context) error { st.Stop(); return nil })
		c.srv.goTracked(st.Wait)
	}
	dtmf := sess.DTMF()
	for {
		select {
		case <-c.ctx.Done():
			stop()
			return true
		case <-st.Done():
			c.srv.goTracked(st.Wait)
			c.log.Info("agent stream ended; menu", "reason", st.Reason())
			c.setState(StateInMenu)
			return false
		case d := <-dtmf:
			c.notifyDTMF(d.Source)
			st.DTMF(d.Key)
		case ev := <-c.events:
			in, ok := ev.(*injectEvent)
			if !ok {
				c.handle(ev)
				continue
			}
			// A transfer from the agent (HTTP API): the stream stops, the
			// decision runs as from the menu.
			c.setState(StateRouting)
			in.reply <- nil
			c.agentUntil(c.srv.now())
			c.setAgentTransfer(in.intent)
			stop()
			c.log.Info("intent from the api while streaming", "intent", in.intent.String())
			f := c.serveDecided(in.intent, in.dec)
			if f.left || c.ending() {
				return true
			}
			// Not served: its prompts (nobody available...), then the menu.
			if n := len(f.next); n > 0 && f.next[n-1] == media.PromptGreeting {
				f.next = f.next[:n-1]
			}
			c.playPrompts(f.next...)
			return c.ending()
		}
	}
}

// agentParams is the lookup context for the agent, in the order of the SIP
// agent's X-Matterline-* headers. open says whether the responsible rule is
// within its hours now (false when there is none or no router).
func (c *call) agentParams() []AgentParam {
	info := c.info()
	res := info.Lookup
	status := res.Status.String()
	if res.Status == lookup.StatusUnknown {
		status = "error"
	}
	p := []AgentParam{{"call_id", c.id}, {"lookup", status}}
	add := func(name, v string) { p = append(p, AgentParam{name, v}) }
	if res.Contact != nil {
		add("contact_id", strconv.FormatInt(res.Contact.ID, 10))
		add("contact_name", res.Contact.Name)
	}
	if res.Matter != nil {
		add("matter_id", strconv.FormatInt(res.Matter.ID, 10))
		add("matter", res.Matter.DisplayNumber)
	}
	if res.Staff != nil {
		add("staff_id", strconv.FormatInt(res.Staff.ID, 10))
		add("staff", res.Staff.Name)
	}
	open := false
	if r := c.srv.router; r != nil && res.Staff != nil {
		dctx, cancel := context.WithTimeout(c.ctx, routerTimeout)
		dec := c.decide(dctx, r, routing.Intent{Kind: routing.IntentResponsible})
		cancel()
		open = dec.Action == routing.ActionTransfer
	}
	add("open", strconv.FormatBool(open))
	return p
}
