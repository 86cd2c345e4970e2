package sip

import (
	"context"
	"time"

	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/routing"
)

// routerTimeout bounds one routing decision.
const routerTimeout = 2 * time.Second

// promptResult is how a prompt with digit collection ended.
type promptResult uint8

const (
	promptUnknown  promptResult = iota
	promptDigit                 // a digit arrived (barge-in or after the prompt)
	promptSilence               // MenuTimeout passed after the prompts without a digit
	promptGone                  // the call or its media ended
	promptInjected              // an intent arrived from Server.Transfer
)

// menu plays the greeting and serves digits: a mapped digit becomes an intent for
// the router; an unmapped one plays "invalid" and the menu again; MenuAttempts
// failures (unmapped digits or silences) end with goodbye and BYE.
func (c *call) menu() {
	cfg := &c.srv.cfg
	failures := 0
	next := []string{media.PromptGreeting}
	for {
		d, res := c.prompt(next, cfg.MenuTimeout)
		next = []string{media.PromptGreeting}
		switch res {
		case promptGone:
			return
		case promptSilence:
			failures++
			c.log.Info("menu silence", "failures", failures)
		case promptInjected:
			in := c.pending
			c.pending = nil
			c.log.Info("intent from the api", "intent", in.intent.String())
			f := c.serveDecided(in.intent, in.dec)
			if f.left {
				return
			}
			next = f.next
			continue
		case promptDigit:
			intent, ok := c.collectIntent(d)
			if c.ending() {
				return
			}
			if !ok {
				failures++
				c.log.Debug("menu input not mapped", "digit", string(d.Key))
				c.log.Info("menu input not mapped", "source", d.Source, "failures", failures)
				next = []string{media.PromptInvalid, media.PromptGreeting}
				break
			}
			c.log.Info("menu intent", "source", d.Source, "intent", intent.String())
			c.notifyIntent(intent, menuIntentSource(intent))
			left, prompts := c.serveIntent(intent)
			if left {
				return
			}
			next = prompts
			continue
		}
		if failures >= cfg.MenuAttempts {
			if ran, left := c.agentStreamFallback(); left {
				return
			} else if ran {
				failures = 0 // back from the agent: the menu starts over
				continue
			}
			c.log.Info("menu attempts exhausted")
			if c.agentAfterMenu() { // agent.mode fallback (agent.go)
				return
			}
			c.playPrompts(media.PromptGoodbye)
			c.finish(EndMenuGoodbye)
			return
		}
	}
}

// prompt plays names in order while collecting one digit: a digit pressed during a
// prompt interrupts it (barge-in). The first digit is not read before the lookup
// result is attached or the lookup gave up. After the prompts, it waits up to
// silence for a digit; while the caller holds the call, silence is not counted.
func (c *call) prompt(names []string, silence time.Duration) (media.Digit, promptResult) {
	sess := c.session()
	if sess == nil {
		return media.Digit{}, promptGone
	}
	playCtx, stopPlay := context.WithCancel(c.ctx)
	played := make(chan struct{})
	c.srv.goTracked(func() {
		defer close(played)
		for _, n := range names {
			p := c.srv.prompts.Get(n)
			if p == nil {
				c.log.Warn("prompt missing", "prompt", n)
				continue
			}
			if err := sess.Play(playCtx, p); err != nil {
				return
			}
		}
	})
	defer func() {
		stopPlay()
		<-played
	}()

	if !c.waitLookup() {
		return media.Digit{}, promptGone
	}
	dtmf := sess.DTMF()
	playing := (<-chan struct{})(played)
	quiet := time.NewTimer(time.Hour)
	quiet.Stop()
	defer quiet.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return media.Digit{}, promptGone
		case <-sess.Done():
			return media.Digit{}, promptGone
		case d, ok := <-dtmf:
			if !ok {
				return media.Digit{}, promptGone
			}
			c.notifyDTMF(d.Source)
			return d, promptDigit
		case ev := <-c.events:
			if in, ok := ev.(*injectEvent); ok {
				// Routing before the API hears back: a client that reads the
				// call right after its transfer request must not see the menu
				// while the decision is still being served.
				c.setState(StateRouting)
				in.reply <- nil
				c.pending = in
				return media.Digit{}, promptInjected
			}
			held := c.in.peerHeld
			c.handle(ev)
			if playing == nil && held && !c.in.peerHeld {
				quiet.Reset(silence) // resumed: the silence starts again
			}
		case <-playing:
			playing = nil
			quiet.Reset(silence)
		case <-quiet.C:
			if c.in.peerHeld {
				quiet.Reset(silence) // a held caller is not silent
				continue
			}
			return media.Digit{}, promptSilence
		}
	}
}

// waitLookup waits until the lookup result is attached or the lookup gave up (it
// is bounded by LookupTimeout; the extra second guards a Lookup that ignores its
// context), serving events meanwhile. False when the call ends meanwhile.
func (c *call) waitLookup() bool {
	if c.lookupIn {
		return true
	}
	t := time.NewTimer(c.srv.cfg.LookupTimeout + time.Second)
	defer t.Stop()
	for !c.lookupIn {
		select {
		case ev := <-c.events:
			c.handle(ev)
		case <-t.C:
			c.log.Warn("menu stopped waiting for the caller lookup")
			c.lookupIn = true
		case <-c.ctx.Done():
			return false
		}
	}
	return true
}

// serveIntent asks the router and executes the decision (execute: transfer,
// unavailable handling, fallbacks); everything that cannot be served plays
// nobody_available (outside_hours when closed) and returns to the menu. left
// reports that the call left the menu.
func (c *call) serveIntent(intent routing.Intent) (left bool, next []string) {
	c.addIntent(intent)
	c.setState(StateRouting)
	defer func() {
		if !left {
			c.setState(StateInMenu)
		}
	}()

	var dec routing.Decision
	if r := c.srv.router; r != nil {
		dctx, cancel := context.WithTimeout(c.ctx, routerTimeout)
		dec = c.decide(dctx, r, intent)
		cancel()
	}
	c.log.Info("routing decision", "intent", intent.String(), "action", dec.Action.String(),
		"rule", dec.Rule, "mode", dec.Mode.String(), "reason", string(dec.Reason))
	c.notifyDecision(dec)
	if c.ending() {
		return true, nil
	}
	f := c.execute(dec)
	return f.left, f.next
}

// serveDecided executes an intent decided elsewhere (Server.Transfer).
func (c *call) serveDecided(intent routing.Intent, dec routing.Decision) flow {
	c.notifyIntent(intent, IntentSourceAPI) // then the decision (observe.go)
	c.notifyDecision(dec)
	c.addIntent(intent)
	c.setState(StateRouting)
	f := c.execute(dec)
	if !f.left {
		c.setState(StateInMenu)
	}
	return f
}

func (c *call) decide(ctx context.Context, r Router, intent routing.Intent) (dec routing.Decision) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("router panicked", "panic", p)
			dec = routing.Decision{Action: routing.ActionNone, Reason: routing.ReasonBadIntent}
		}
	}()
	return r.Decide(ctx, c.info(), intent)
}
