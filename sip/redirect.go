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
func (s *Server) redirect(c *call, req *gosip.Request, tx gosip.ServerTransaction) bool {
	if s.cfg.Mode != ModeRedirect || s.router == nil {
		return false
	}
	wait := time.NewTimer(s.cfg.AnswerWait)
	select {
	case <-c.lookup:
	case <-wait.C:
	case <-c.quit:
	}
	wait.Stop()
	if c.isEnding() {
		return false
	}
	intent := routing.Intent{Kind: routing.IntentResponsible}
	ctx, cancel := context.WithTimeout(context.Background(), routerTimeout)
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
	c.mu.Lock()
	c.intents = append(c.intents, intent)
	c.mu.Unlock()
	c.noteDecision(dec)
	c.setOutcome(records.OutcomeRedirected)
	c.log.Info("redirecting", "rule", dec.Rule, "contact", t.uri.String())
	res := gosip.NewResponseFromRequest(req, 302, "Moved Temporarily", nil)
	if to := res.To(); to != nil { // RFC 3261 §8.2.6.2: a To tag on final responses
		if to.Params == nil {
			to.Params = gosip.NewParams()
		}
		if _, ok := to.Params.Get("tag"); !ok {
			to.Params.Add("tag", gosip.GenerateTagN(16))
		}
	}
	res.AppendHeader(&gosip.ContactHeader{Address: t.uri})
	res.AppendHeader(gosip.NewHeader("Server", s.cfg.UserAgent))
	if err := tx.Respond(res); err != nil {
		c.log.Info("302 not sent", "error", err)
	}
	c.end(EndRejected, false)
	return true
}
