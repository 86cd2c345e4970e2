package sip

import (
	"context"
	"time"

	gosip "github.com/emiago/sipgo/sip"

	"github.com/matterline/matterline/records"
	"github.com/matterline/matterline/routing"
)

// redirect serves sip.mode redirect: the INVITE is answered 302 Moved
// Temporarily (RFC 3261 §21.3.3) with Contact = the responsible staff member's
// destination when the lookup (waited for at most AnswerWait) and the rules say
// transfer; numbers in their outbound proxy form. It returns false when the call
// is to be answered as usual.
func (s *Server) redirect(c *call) bool {
	if s.cfg.Mode != ModeRedirect || s.router == nil {
		return false
	}
	wait := time.NewTimer(s.cfg.AnswerWait)
	defer wait.Stop()
	for waiting := true; waiting && !c.lookupIn; {
		select {
		case ev := <-c.events:
			c.handle(ev)
		case <-wait.C:
			waiting = false
		case <-c.inviteTx.Done():
			c.finish(EndCallerCancel)
			return true
		case <-c.ctx.Done():
			return true
		}
	}
	intent := routing.Intent{Kind: routing.IntentResponsible}
	ctx, cancel := context.WithTimeout(c.ctx, routerTimeout)
	dec := c.decide(ctx, s.router, intent)
	cancel()
	if dec.Action != routing.ActionTransfer {
		c.log.Info("redirect not possible, answering", "action", dec.Action.String(), "reason", string(dec.Reason))
		return false
	}
	t, err := s.targetFor(dec.Destination)
	if err != nil {
		c.log.Warn("redirect destination not usable, answering", "rule", dec.Rule, "error", err)
		return false
	}
	c.addIntent(intent)
	c.noteDecision(dec)
	c.setOutcome(records.OutcomeRedirected)
	c.log.Info("redirecting", "rule", dec.Rule, "contact", t.uri.String())
	res := gosip.NewResponseFromRequest(c.invite, 302, "Moved Temporarily", nil)
	setToTag(res, gosip.GenerateTagN(16)) // RFC 3261 §8.2.6.2
	res.AppendHeader(&gosip.ContactHeader{Address: t.uri})
	res.AppendHeader(gosip.NewHeader("Server", s.cfg.UserAgent))
	if err := c.inviteTx.Respond(res); err != nil {
		c.log.Info("302 not sent", "error", err)
	}
	c.finish(EndRejected)
	c.release()
	return true
}
