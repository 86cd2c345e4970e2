package sip

import (
	"context"
	"fmt"

	"github.com/matterline/matterline/media"
)

// StreamAgent is a voice agent reached by something other than SIP (the
// WebSocket media stream of agent.stream_url). Plugged in with WithStreamAgent,
// it takes the calls agent.mode sends to the agent instead of agent.uri; the
// call keeps the same rules: the menu when it cannot connect, transfers only
// through AgentCall.Transfer (the same checks as the SIP agent's REFER).
type StreamAgent interface {
	// Connect starts the agent's part of a call and returns once the agent is
	// connected (nil: the agent now reads and writes the caller's audio through
	// call.Media) or could not be (an error: the menu takes the call). ctx is
	// bounded by Config.AgentAnswerTimeout.
	Connect(ctx context.Context, call AgentCall) (AgentSession, error)
}

// AgentSession is one call's connection to a stream agent.
type AgentSession interface {
	// Done is closed when the agent's part ended on its own.
	Done() <-chan struct{}
	// Err says why after Done: nil when the agent hung up (the call ends with
	// BYE), an error when it failed (the menu takes the call).
	Err() error
	// Close ends the agent's part (a transfer, the caller hung up); it stops
	// using call.Media before it returns. Idempotent.
	Close() error
}

// AgentCall is what a stream agent gets for a call.
type AgentCall struct {
	Info    CallInfo
	Context AgentContext
	// Media is the caller's RTP session: the agent plays to it and reads from it
	// while connected; the call plays nothing meanwhile.
	Media *media.Session
	// Transfer asks for a transfer like the SIP agent's REFER: target is
	// rule-NAME, staff-NAME, an extension, a number equal to a rule's
	// destination, or a sip:/tel: URI of one of those (sip: only with one of our
	// addresses). nil: accepted; the session is closed and the decision runs on
	// the caller's leg. An error wrapping ErrAgentRefused otherwise; the caller
	// stays with the agent.
	Transfer func(ctx context.Context, target string) error
}

// WithStreamAgent plugs in a stream agent (agent.stream_url) used instead of
// agent.uri by agent.mode first and fallback.
func WithStreamAgent(a StreamAgent) Option { return func(s *Server) { s.streamAgent = a } }

// streamTransfer is a stream agent's transfer request, served by the call's
// goroutine while the agent is connected.
type streamTransfer struct {
	target string
	reply  chan error
}

// toStreamAgent is toAgent for a stream agent.
func (c *call) toStreamAgent(why agentWhy) bool {
	sess := c.session()
	if sess == nil {
		return true
	}
	c.setAgentUsed()
	xfer := make(chan streamTransfer)
	stopped := make(chan struct{})
	defer close(stopped)
	ac := AgentCall{Info: c.info(), Context: c.agentContext(), Media: sess,
		Transfer: func(ctx context.Context, target string) error {
			r := streamTransfer{target: target, reply: make(chan error, 1)}
			select {
			case xfer <- r:
			case <-stopped:
				return fmt.Errorf("%w: the agent's part is over", ErrAgentRefused)
			case <-ctx.Done():
				return ctx.Err()
			}
			select {
			case err := <-r.reply:
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}}
	var as AgentSession
	err := c.await(func(ctx context.Context) error {
		cctx, cancel := context.WithTimeout(ctx, c.srv.cfg.AgentAnswerTimeout)
		defer cancel()
		var err error
		as, err = c.srv.streamAgent.Connect(cctx, ac)
		return err
	})
	if err != nil || as == nil {
		if as != nil {
			_ = as.Close()
		}
		if c.ending() {
			return true
		}
		c.log.Warn("stream agent unavailable: menu instead", "why", why.String(), "error", err)
		return false
	}
	c.agentSince(c.srv.now())
	c.setState(StateAgent)
	c.log.Info("stream agent connected")
	end := func() {
		_ = as.Close()
		c.agentUntil(c.srv.now())
		c.setState(StateRouting)
	}
	for {
		select {
		case ev := <-c.events:
			if in, ok := ev.(*injectEvent); ok {
				in.reply <- nil
				end()
				return c.agentTransfer(in.intent, in.dec, IntentSourceAPI, nil)
			}
			c.handle(ev)
		case r := <-xfer:
			intent, dec, err := c.agentIntent(nil, r.target)
			if err != nil {
				c.log.Warn("stream agent transfer refused", "target", maskTarget(r.target), "error", err)
				r.reply <- err
				continue
			}
			r.reply <- nil
			end()
			return c.agentTransfer(intent, dec, IntentSourceAgent, nil)
		case <-as.Done():
			c.agentUntil(c.srv.now())
			if err := as.Err(); err != nil {
				c.log.Warn("stream agent failed: menu instead", "error", err)
				_ = as.Close()
				c.setState(StateInMenu)
				return c.ending()
			}
			c.log.Info("stream agent hung up")
			_ = as.Close()
			c.finish(EndCalleeBye)
			return true
		case <-c.ctx.Done():
			_ = as.Close()
			c.agentUntil(c.srv.now())
			return true
		}
	}
}
